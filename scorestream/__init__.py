"""scorestream: real-time transactional model inference over Apache Kafka."""

__version__ = "0.1.0"
