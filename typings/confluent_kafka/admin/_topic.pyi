from .._model import TopicPartitionInfo as TopicPartitionInfo
from .._util import ConversionUtil as ConversionUtil
from ..cimpl import Uuid as Uuid
from ._acl import AclOperation as AclOperation
from _typeshed import Incomplete

class TopicDescription:
    """
    Represents topic description information for a topic used in describe topic operation.
    Used by :meth:`AdminClient.describe_topics`.

    Parameters
    ----------
    name : str
        The topic name.
    topic_id: Uuid
        The topic id of the topic
    is_internal:
        Whether the topic is internal or not
    partitions : list(TopicPartitionInfo)
        Partition information.
    authorized_operations: list(AclOperation)
        AclOperations allowed for the topic.
    """
    name: Incomplete
    topic_id: Incomplete
    is_internal: Incomplete
    partitions: Incomplete
    authorized_operations: Incomplete
    def __init__(self, name: str, topic_id: Uuid, is_internal: bool, partitions: list[TopicPartitionInfo], authorized_operations: list[str | int | AclOperation] | None = None) -> None: ...
