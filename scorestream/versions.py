"""Pinned versions of the external runtime. Change them here and nowhere else."""

KAFKA_VERSION = "4.4.0"
"""Apache Kafka, the newest 4.x that resolves from Maven Central (checked 2026-11-24)."""

SCALA_BINARY_VERSION = "2.13"

LOG4J_VERSION = "2.25.3"
"""Log4j2 for the broker and the CLI tools.

Kafka 4.4's jars are compiled against SLF4J 1.7 (``slf4j-api:1.7.36``), so the binding is
``log4j-slf4j-impl`` (SLF4J 1.x), not ``log4j-slf4j2-impl``.
"""

KAFKA_ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("org.apache.kafka", f"kafka_{SCALA_BINARY_VERSION}", KAFKA_VERSION),
    ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
)
