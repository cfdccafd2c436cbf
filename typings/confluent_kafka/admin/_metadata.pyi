from _typeshed import Incomplete
from confluent_kafka.cimpl import KafkaError as KafkaError

class ClusterMetadata:
    """
    Provides information about the Kafka cluster, brokers, and topics.
    Returned by list_topics().

    This class is typically not user instantiated.
    """
    cluster_id: Incomplete
    controller_id: int
    brokers: dict[int, 'BrokerMetadata']
    topics: dict[str, 'TopicMetadata']
    orig_broker_id: int
    orig_broker_name: Incomplete
    def __init__(self) -> None: ...

class BrokerMetadata:
    """
    Provides information about a Kafka broker.

    This class is typically not user instantiated.
    """
    id: int
    host: Incomplete
    port: int
    def __init__(self) -> None: ...

class TopicMetadata:
    """
    Provides information about a Kafka topic.

    This class is typically not user instantiated.
    """
    topic: str | None
    partitions: dict[int, 'PartitionMetadata']
    error: KafkaError | None
    def __init__(self) -> None: ...

class PartitionMetadata:
    """
    Provides information about a Kafka partition.

    This class is typically not user instantiated.

    :warning: Depending on cluster state the broker ids referenced in
              leader, replicas and ISRs may temporarily not be reported
              in ClusterMetadata.brokers. Always check the availability
              of a broker id in the brokers dict.
    """
    id: int
    leader: int
    replicas: list[int]
    isrs: list[int]
    error: KafkaError | None
    def __init__(self) -> None: ...

class GroupMember:
    """Provides information about a group member.

    For more information on the metadata format, refer to:
    `A Guide To The Kafka Protocol <https://cwiki.apache.org/confluence/display/KAFKA/A+Guide+To+The+Kafka+Protocol#AGuideToTheKafkaProtocol-GroupMembershipAPI>`_.

    This class is typically not user instantiated.
    """
    id: Incomplete
    client_id: Incomplete
    client_host: Incomplete
    metadata: Incomplete
    assignment: Incomplete
    def __init__(self) -> None: ...

class GroupMetadata:
    """GroupMetadata provides information about a Kafka consumer group

    This class is typically not user instantiated.
    """
    broker: Incomplete
    id: Incomplete
    error: Incomplete
    state: Incomplete
    protocol_type: Incomplete
    protocol: Incomplete
    members: list[GroupMember]
    def __init__(self) -> None: ...
