"""The reader's retries: transient broker states are ridden out, other errors are not."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from scorestream import reader


class _Consumer:
    """Raises the given errors one per call, then answers."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = list(errors)
        self.calls = 0

    def _next(self) -> None:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self._next()
        return [TopicPartition(tp.topic, tp.partition, 7) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self._next()
        return 0, 9


def test_committed_rides_out_a_coordinator_that_is_not_ready() -> None:
    c = _Consumer([KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS])
    (tp,) = reader.committed(c, [TopicPartition("t", 0)], timeout=5)  # type: ignore[arg-type]
    assert (tp.topic, tp.partition, tp.offset) == ("t", 0, 7)
    assert c.calls == 3


def test_committed_raises_an_error_that_is_not_transient() -> None:
    c = _Consumer([KafkaError.GROUP_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException) as info:
        reader.committed(c, [TopicPartition("t", 0)], timeout=5)  # type: ignore[arg-type]
    assert info.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert c.calls == 1


def test_committed_gives_up_at_its_timeout() -> None:
    c = _Consumer([KafkaError.NOT_COORDINATOR] * 1000)
    with pytest.raises(KafkaException):
        reader.committed(c, [TopicPartition("t", 0)], timeout=0.3)  # type: ignore[arg-type]
    assert 1 < c.calls < 20


def test_watermarks_ride_out_leadership_but_not_a_coordinator_error() -> None:
    c = _Consumer([KafkaError.LEADER_NOT_AVAILABLE])
    assert reader.watermarks(c, TopicPartition("t", 0), timeout=5) == (0, 9)  # type: ignore[arg-type]
    c = _Consumer([KafkaError.NOT_COORDINATOR])
    with pytest.raises(KafkaException):
        reader.watermarks(c, TopicPartition("t", 0), timeout=5)  # type: ignore[arg-type]
