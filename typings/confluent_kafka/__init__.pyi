from ._model import AcknowledgeType as AcknowledgeType, ConsumerGroupState as ConsumerGroupState, ConsumerGroupTopicPartitions as ConsumerGroupTopicPartitions, ConsumerGroupType as ConsumerGroupType, ElectionType as ElectionType, IsolationLevel as IsolationLevel, Messages as Messages, Node as Node, TopicCollection as TopicCollection, TopicPartitionInfo as TopicPartitionInfo
from .cimpl import ConcurrentModificationException as ConcurrentModificationException, Consumer as Consumer, IllegalStateException as IllegalStateException, Message as Message, OFFSET_BEGINNING as OFFSET_BEGINNING, OFFSET_END as OFFSET_END, OFFSET_INVALID as OFFSET_INVALID, OFFSET_STORED as OFFSET_STORED, Producer as Producer, ShareConsumer as ShareConsumer, TIMESTAMP_CREATE_TIME as TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME as TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_NOT_AVAILABLE as TIMESTAMP_NOT_AVAILABLE, TopicPartition as TopicPartition, Uuid as Uuid, consistent as consistent, fnv1a as fnv1a, libversion as libversion, murmur2 as murmur2, version as version
from .deserializing_consumer import DeserializingConsumer as DeserializingConsumer
from .error import KafkaError as KafkaError, KafkaException as KafkaException
from .serializing_producer import SerializingProducer as SerializingProducer
from _typeshed import Incomplete

__all__ = ['admin', 'Consumer', 'ShareConsumer', 'Messages', 'aio', 'KafkaError', 'KafkaException', 'IllegalStateException', 'ConcurrentModificationException', 'kafkatest', 'libversion', 'version', 'murmur2', 'consistent', 'fnv1a', 'Message', 'OFFSET_BEGINNING', 'OFFSET_END', 'OFFSET_INVALID', 'OFFSET_STORED', 'Producer', 'DeserializingConsumer', 'DeserializingShareConsumer', 'SerializingProducer', 'TIMESTAMP_CREATE_TIME', 'TIMESTAMP_LOG_APPEND_TIME', 'TIMESTAMP_NOT_AVAILABLE', 'TopicPartition', 'Node', 'ConsumerGroupTopicPartitions', 'ConsumerGroupState', 'ConsumerGroupType', 'Uuid', 'IsolationLevel', 'TopicCollection', 'TopicPartitionInfo', 'ElectionType', 'AcknowledgeType']

class ThrottleEvent:
    """
    ThrottleEvent contains details about a throttled request.
    Set up a throttle callback by setting the ``throttle_cb`` configuration
    property to a callable that takes a ThrottleEvent object as its only argument.
    The callback will be triggered from poll(), consume() or flush() when a request
    has been throttled by the broker.

    This class is typically not user instantiated.

    :ivar str broker_name: The hostname of the broker which throttled the request
    :ivar int broker_id: The broker id
    :ivar float throttle_time: The amount of time (in seconds) the broker throttled (delayed) the request
    """
    broker_name: Incomplete
    broker_id: Incomplete
    throttle_time: Incomplete
    def __init__(self, broker_name: str, broker_id: int, throttle_time: float) -> None: ...

# Names in __all__ with no definition:
#   admin
#   aio
#   kafkatest
