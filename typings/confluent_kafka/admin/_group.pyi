from .._model import ConsumerGroupState as ConsumerGroupState, ConsumerGroupType as ConsumerGroupType, Node as Node
from .._util import ConversionUtil as ConversionUtil
from ._acl import AclOperation as AclOperation
from _typeshed import Incomplete
from confluent_kafka.cimpl import TopicPartition as TopicPartition

class ConsumerGroupListing:
    """
    Represents consumer group listing information for a group used in list consumer group operation.
    Used by :class:`ListConsumerGroupsResult`.

    Parameters
    ----------
    group_id : str
        The consumer group id.
    is_simple_consumer_group : bool
        Whether a consumer group is simple or not.
    state : ConsumerGroupState
        Current state of the consumer group.
    type : ConsumerGroupType
        Type of the consumer group.
    """
    group_id: Incomplete
    is_simple_consumer_group: Incomplete
    state: Incomplete
    type: Incomplete
    def __init__(self, group_id: str, is_simple_consumer_group: bool, state: ConsumerGroupState | str | int | None = None, type: ConsumerGroupType | str | int | None = None) -> None: ...

class ListConsumerGroupsResult:
    """
    Represents result of List Consumer Group operation.
    Used by :meth:`AdminClient.list_consumer_groups`.

    Parameters
    ----------
    valid : list(ConsumerGroupListing)
        List of successful consumer group listing responses.
    errors : list(KafkaException)
        List of errors encountered during the operation, if any.
    """
    valid: Incomplete
    errors: Incomplete
    def __init__(self, valid: list[ConsumerGroupListing] | None = None, errors: list[Exception] | None = None) -> None: ...

class MemberAssignment:
    """
    Represents member assignment information.
    Used by :class:`MemberDescription`.

    Parameters
    ----------
    topic_partitions : list(TopicPartition)
        The topic partitions assigned to a group member.
    """
    topic_partitions: Incomplete
    def __init__(self, topic_partitions: list[TopicPartition] | None) -> None: ...

class MemberDescription:
    """
    Represents member information.
    Used by :class:`ConsumerGroupDescription`.

    Parameters
    ----------
    member_id : str
        The consumer id of the group member.
    client_id : str
        The client id of the group member.
    host: str
        The host where the group member is running.
    assignment: MemberAssignment
        The assignment of the group member
    target_assignment: MemberAssignment
        The target assignment of the group member
    group_instance_id : str
        The instance id of the group member.
    """
    member_id: Incomplete
    client_id: Incomplete
    host: Incomplete
    assignment: Incomplete
    target_assignment: Incomplete
    group_instance_id: Incomplete
    def __init__(self, member_id: str, client_id: str, host: str, assignment: MemberAssignment, group_instance_id: str | None = None, target_assignment: MemberAssignment | None = None) -> None: ...

class ConsumerGroupDescription:
    """
    Represents consumer group description information for a group used in describe consumer group operation.
    Used by :meth:`AdminClient.describe_consumer_groups`.

    Parameters
    ----------
    group_id : str
        The consumer group id.
    is_simple_consumer_group : bool
        Whether a consumer group is simple or not.
    members: list(MemberDescription)
        Description of the members of the consumer group.
    partition_assignor: str
        Partition assignor.
    state : ConsumerGroupState
        Current state of the consumer group.
    type  : ConsumerGroupType
        Type of the consumer group.
    coordinator: Node
        Consumer group coordinator.
    authorized_operations: list(AclOperation)
        AclOperations allowed for the consumer group.
    """
    group_id: Incomplete
    is_simple_consumer_group: Incomplete
    members: Incomplete
    authorized_operations: Incomplete
    partition_assignor: Incomplete
    state: Incomplete
    type: Incomplete
    coordinator: Incomplete
    def __init__(self, group_id: str, is_simple_consumer_group: bool, members: list[MemberDescription], partition_assignor: str, state: ConsumerGroupState | str | int | None, coordinator: Node, authorized_operations: list[AclOperation | str | int] | None = None, type: ConsumerGroupType | str | int = ...) -> None: ...
