from ..cimpl import Message as Message, TopicPartition as TopicPartition
from _typeshed import Incomplete
from enum import Enum, IntEnum
from typing import Iterable, Iterator

class Node:
    """
    Represents node information.
    Used by :class:`ConsumerGroupDescription`

    Parameters
    ----------
    id: int
        The node id of this node.
    id_string:
        String representation of the node id.
    host:
        The host name for this node.
    port: int
        The port for this node.
    rack: str
        The rack for this node.
    """
    id: Incomplete
    id_string: Incomplete
    host: Incomplete
    port: Incomplete
    rack: Incomplete
    def __init__(self, id: int, host: str, port: int, rack: str | None = None) -> None: ...

class ConsumerGroupTopicPartitions:
    """
    Represents consumer group and its topic partition information.
    Used by :meth:`AdminClient.list_consumer_group_offsets` and
    :meth:`AdminClient.alter_consumer_group_offsets`.

    Parameters
    ----------
    group_id: str
        Id of the consumer group.
    topic_partitions: list(TopicPartition)
        List of topic partitions information.
    """
    group_id: Incomplete
    topic_partitions: Incomplete
    def __init__(self, group_id: str, topic_partitions: list[TopicPartition] | None = None) -> None: ...

class ConsumerGroupState(Enum):
    """
    Enumerates the different types of Consumer Group State.

    Note that the state :py:attr:`UNKOWN` (typo one) is deprecated and will be removed in
    future major release. Use :py:attr:`UNKNOWN` instead.
    """
    UNKNOWN = ...
    UNKOWN = UNKNOWN
    PREPARING_REBALANCING = ...
    COMPLETING_REBALANCING = ...
    STABLE = ...
    DEAD = ...
    EMPTY = ...
    def __lt__(self, other: object) -> bool: ...

class ConsumerGroupType(Enum):
    """
    Enumerates the different types of Consumer Group Type.

    Values:
    -------
    """
    UNKNOWN = ...
    CONSUMER = ...
    CLASSIC = ...
    def __lt__(self, other: object) -> bool: ...

class TopicCollection:
    """
    Represents collection of topics in the form of different identifiers
    for the topic.

    Parameters
    ----------
    topic_names: list(str)
        List of topic names.
    """
    topic_names: Incomplete
    def __init__(self, topic_names: list[str]) -> None: ...

class TopicPartitionInfo:
    """
    Represents partition information.
    Used by :class:`TopicDescription`.

    Parameters
    ----------
    id : int
        Id of the partition.
    leader : Node
        Leader broker for the partition.
    replicas: list(Node)
        Replica brokers for the partition.
    isr: list(Node)
        In-Sync-Replica brokers for the partition.
    """
    id: Incomplete
    leader: Incomplete
    replicas: Incomplete
    isr: Incomplete
    def __init__(self, id: int, leader: Node, replicas: list[Node], isr: list[Node]) -> None: ...

class IsolationLevel(Enum):
    """
    Enum for Kafka isolation levels.

    Values:
    -------
    """
    READ_UNCOMMITTED = ...
    READ_COMMITTED = ...
    def __lt__(self, other: object) -> bool: ...

class ElectionType(Enum):
    """
    Enumerates the different types of leader elections.

    Values:
    -------
    """
    PREFERRED = ...
    UNCLEAN = ...
    def __lt__(self, other: object) -> bool: ...

class AcknowledgeType(IntEnum):
    """
    Share Consumer acknowledgement type used to tell the broker how to
    handle a polled message in explicit acknowledgement mode.

    Values:
    -------
    """
    ACCEPT = ...
    RELEASE = ...
    REJECT = ...

class Messages:
    """Batch of messages returned by :meth:`ShareConsumer.poll`.

    Read-only sequence supporting iteration, len(), indexing, and slicing,
    plus the count(), is_empty(), and records() accessors.
    """
    def __init__(self, messages: Iterable[Message] = ()) -> None: ...
    def records(self) -> list[Message]:
        """Copy of the messages in this batch.

        :rtype: list
        """
    def count(self) -> int:
        """Number of messages in this batch.

        :rtype: int
        """
    def is_empty(self) -> bool:
        """Whether this batch contains no messages.

        :rtype: bool
        """
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | Messages: ...
