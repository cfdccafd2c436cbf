from _typeshed import Incomplete
from typing import Any, Awaitable, Callable, NamedTuple

log: Incomplete
CLUSTER_ID_TIMEOUT: float

class SerdeSpec(NamedTuple):
    """What a client configuration says about one of its serdes."""
    prop: str
    serde: Any
    builder: Any
    is_key: bool

def pop_serde_props(conf: dict[str, Any], key_prop: str, value_prop: str) -> tuple[list[SerdeSpec], dict[str, Any]]:
    """
    Pop the key and value serde properties from a client configuration.

    Pops ``<key_prop>`` / ``<value_prop>`` and their ``.builder`` counterparts
    without running the builders, so that the same configuration handling
    serves both the blocking and the asyncio clients.

    Args:
        conf (dict): Client configuration. Not modified; a copy is returned.

        key_prop (str): Property holding the key serde, e.g. ``key.serializer``.

        value_prop (str): Property holding the value serde.

    Returns:
        tuple: The key and value :py:class:`SerdeSpec`, in that order, and the
        remaining configuration.

    Raises:
        ValueError: If a property and its ``.builder`` counterpart are both
            configured.
    """
def validate_build_result(builder_prop: str, result: Any) -> tuple[Any, dict[str, Any]]:
    """
    Check what a builder handed back and split it into serde and configuration.

    Raises:
        ValueError: If the result is not a ``(serde, dict)`` pair, naming the
            property whose builder is at fault.
    """
def intersect_leftovers(conf: dict[str, Any], leftovers: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Combine what the builders handed back into the client configuration.

    A property is kept only if every builder left it in place, so a property
    consumed by any of them never reaches the Kafka client. With no builder
    the configuration is returned as is.
    """
def build_serdes(specs: list[SerdeSpec], conf: dict[str, Any]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """
    Run the builders of a client configuration.

    Every builder is handed the full client configuration, so a property two
    serdes share is seen by both. What the client receives is the intersection
    of what the builders handed back: a property any builder consumed is
    filtered out, and what remains holds Kafka properties only. If a builder
    fails, the serdes built before it are closed.

    Args:
        specs (list): The serde specs from :py:func:`pop_serde_props`.

        conf (dict): The remaining client configuration.

    Returns:
        tuple: The serdes in spec order (None where none was configured), the
        subset of them that was built here and is therefore owned by the
        client, and the configuration left over for the client.
    """
async def maybe_await(result: Any) -> Any:
    """Await ``result`` if it is awaitable, else hand it back as is.

    Lets the asyncio clients accept both the asyncio serdes, whose calls
    return coroutines, and the blocking ones (plain callables included).
    """
async def async_build_serdes(specs: list[SerdeSpec], conf: dict[str, Any]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """
    Asyncio counterpart of :py:func:`build_serdes`.

    A builder's ``build()`` may return either a ``(serde, conf)`` pair or a
    coroutine yielding one, as the asyncio Schema Registry builders do.
    """

class SharedClusterIdResolver:
    """
    Resolve the Kafka cluster id with at most one call in flight per client.

    The resolver handed to the serdes runs on whichever thread serializes or
    deserializes a message, and ``cluster_id()`` blocks for up to the timeout
    while the client reaches a broker. Concurrent callers, both serdes and
    any number of threads, share a single such call and its deadline rather
    than each starting a wait of their own.

    The outcome is not kept once the call completes: librdkafka caches the id
    itself once known, so later calls return at once, and a failed resolution
    is simply retried by the next caller.

    Args:
        cluster_id (callable): The client's ``cluster_id`` method.

        timeout (float): Seconds to wait for the id.
    """
    def __init__(self, cluster_id: Callable[..., Any], timeout: float = ...) -> None: ...
    def __call__(self) -> Any: ...

class AsyncSharedClusterIdResolver:
    """
    Asyncio counterpart of :py:class:`SharedClusterIdResolver`.

    Concurrent awaiters share a single ``cluster_id()`` call, which the
    asyncio clients run on their executor, so however many coroutines miss
    the subject cache at once only one executor thread waits on the broker.
    A waiter that is cancelled leaves the shared call running for the others.

    Args:
        cluster_id (coroutine function): The client's ``cluster_id`` method.

        timeout (float): Seconds to wait for the id.
    """
    def __init__(self, cluster_id: Callable[..., Awaitable[Any]], timeout: float = ...) -> None: ...
    async def __call__(self) -> Any: ...

def propagate_cluster_id_resolver(resolver: Callable[[], Any], serdes: list[Any]) -> None:
    """
    Hand a Kafka cluster id resolver to every serde that can take one.

    Nothing is resolved here: the serdes that need the id (those resolving
    subjects through the Schema Registry associated subject name strategy
    without an explicit ``subject.name.strategy.kafka.cluster.id``) invoke the
    resolver on their first lookup, so creating a client never waits on a
    broker.

    Args:
        resolver (callable): Callable returning the cluster id, normally a
            :py:class:`SharedClusterIdResolver`.

        serdes (list): Serdes to offer the resolver to. None entries and
            serdes without a ``set_cluster_id_resolver`` method, such as plain
            callables, are skipped.
    """
def propagate_async_cluster_id_resolver(resolver: Callable[[], Awaitable[Any]], serdes: list[Any]) -> None:
    """
    Asyncio counterpart of :py:func:`propagate_cluster_id_resolver`.

    The resolver is a coroutine function, so it is offered through
    ``set_async_cluster_id_resolver``, which only the asyncio serdes define.
    The blocking serdes an asyncio client also accepts get no resolver: they
    could not await it, and blocking on the cluster id would stall the event
    loop they run on.

    Args:
        resolver (coroutine function): Coroutine function returning the
            cluster id, normally an :py:class:`AsyncSharedClusterIdResolver`.

        serdes (list): Serdes to offer the resolver to. None entries and
            serdes without a ``set_async_cluster_id_resolver`` method are
            skipped.
    """
def close_serdes(serdes: list[Any]) -> None:
    """
    Close every serde, attempting all of them before re-raising the first error.

    Errors after the first are logged. Serdes without a ``close`` method are
    skipped.
    """
async def async_close_serdes(serdes: list[Any]) -> None:
    """
    Asyncio counterpart of :py:func:`close_serdes`.

    An asyncio serde is closed through its ``aclose()`` coroutine; a serde
    without one through ``close()``, which may itself be a coroutine function
    or a plain method.
    """
