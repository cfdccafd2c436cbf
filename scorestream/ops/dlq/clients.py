"""The Kafka clients of ``scorestream dlq`` (:mod:`scorestream.ops.dlq`) and what it says when
the broker refuses an operation (ACLs)."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaError

from scorestream.errors import KafkaClientError
from scorestream.kafka_config import consumer_config
from scorestream.settings import KafkaSettings

CLIENT_ID = "scorestream-dlq"

_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


class AccessDeniedError(KafkaClientError):
    """The broker refused an operation (ACLs): the message names the resource and the rights."""


def _denied(err: object) -> bool:
    return isinstance(err, KafkaError) and err.code() in _DENIED


def _access(what: str, err: object) -> AccessDeniedError:
    return AccessDeniedError(
        f"not authorized to {what} ({err}): the operator's principal needs Read+Describe on the "
        "tenant's *.dlq topics and Read on groups '<tenant>.dlq-' (prefix); redrive also needs "
        "Write on the original topics and on transactional ids '<tenant>.dlq-redrive' (prefix)"
    )


def _consumer(kafka: KafkaSettings, group: str) -> Consumer:
    conf = consumer_config(kafka, group_id=group, client_id=CLIENT_ID)
    return Consumer(conf | {"enable.partition.eof": False})
