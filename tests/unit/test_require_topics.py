"""``require_topics``: a topic the broker's metadata does not show yet is asked for again for a
moment (creation reaches the metadata caches after the create call returns); a missing one
fails with the provisioning command, a denied one at once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError

from scorestream.admin import require_topics
from scorestream.errors import MissingTopicError, TopicError


@dataclass
class _Meta:
    error: KafkaError | None = None


@dataclass
class _Listing:
    topics: dict[str, _Meta]


@dataclass
class _Client:
    """Answers ``list_topics(topic)`` as a broker would: unknown until the topic's turn comes."""

    visible_after: dict[str, int]
    denied: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    def list_topics(self, topic: str, timeout: float) -> _Listing:
        self.asked.append(topic)
        if topic in self.denied:
            return _Listing({topic: _Meta(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))})
        if self.asked.count(topic) > self.visible_after.get(topic, 10**9):
            return _Listing({topic: _Meta()})
        return _Listing({topic: _Meta(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))})


def _require(client: _Client, topics: list[str], **kwargs: Any) -> None:
    require_topics(cast("Any", client), topics, tenant="acme", **kwargs)


def test_a_topic_that_appears_a_moment_later_is_found() -> None:
    client = _Client(visible_after={"acme.a": 0, "acme.b": 2})
    _require(client, ["acme.a", "acme.b"])
    assert client.asked == ["acme.a", "acme.b", "acme.b", "acme.b"]  # a is not asked again


def test_a_missing_topic_fails_after_the_grace_naming_the_command() -> None:
    client = _Client(visible_after={"acme.a": 0})
    start = time.monotonic()
    with pytest.raises(MissingTopicError, match="scorestream topics create --tenant acme") as err:
        _require(client, ["acme.a", "acme.b"], appear_within_s=0.6)
    assert time.monotonic() - start >= 0.5
    assert err.value.topics == ["acme.b"]
    assert client.asked.count("acme.b") >= 3


def test_no_grace_fails_at_once() -> None:
    client = _Client(visible_after={})
    with pytest.raises(MissingTopicError):
        _require(client, ["acme.a"], appear_within_s=0)
    assert client.asked == ["acme.a"]


def test_a_denied_topic_fails_at_once() -> None:
    client = _Client(visible_after={}, denied={"acme.b"})
    with pytest.raises(TopicError, match=r"not authorized to describe acme\.b"):
        _require(client, ["acme.a", "acme.b"])
    assert client.asked == ["acme.a", "acme.b"]
    with pytest.raises(RuntimeError, match="custom"):
        _require(client, ["acme.b"], denied=lambda t: cast("Any", RuntimeError(f"custom {t}")))
