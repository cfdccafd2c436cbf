"""The genuine Apache Kafka broker, assembled from Maven Central, for development and tests."""

from scorestream.broker.local import BrokerStatus, LocalBroker
from scorestream.broker.state import BrokerState

__all__ = ["BrokerState", "BrokerStatus", "LocalBroker"]
