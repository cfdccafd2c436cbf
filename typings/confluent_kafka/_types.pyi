from typing import Any, Callable

HeadersType = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]]
Serializer = Callable[[Any, Any], bytes]
Deserializer = Callable[[bytes | None, Any], Any]
DeliveryCallback = Callable[[Any | None, Any], None]
RebalanceCallback = Callable[[Any, list[Any]], None]
AcknowledgementCommitCallback = Callable[[dict[Any, Any], Any | None], None]
