"""The genuine Apache Kafka broker, assembled from Maven Central, for development and tests."""

from scorestream.dev.broker.local import BrokerStatus, LocalBroker
from scorestream.dev.broker.state import BrokerState

__all__ = ["BrokerState", "BrokerStatus", "LocalBroker"]
