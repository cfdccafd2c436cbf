"""The decision service: champion predictions in, approve / review / decline out, exactly once.

``<tenant>.predictions`` → :func:`decide_batch` (pure: the tenant's policy, see
:mod:`consumers.policy`) → ``<tenant>.decisions``. The shared
:class:`~scorestream.processor.Processor` commits the decisions, the dead letters and the input
offsets in one Kafka transaction per batch, so each prediction yields exactly one committed
decision (readers use ``read_committed``); a replayed batch is decided again by the same rules.

Request-reply: when the prediction carries the CloudEvents extension ``replyto`` =
``"<topic>/<partition>"`` (set by the gateway and carried by every hop), the decision is also
written to that partition, in the same transaction. Only this tenant's ``replies`` topic and an
existing partition are accepted: anything else would make the transaction fail on every replay.
An unusable ``replyto`` is logged and counted; the decision itself still goes to ``decisions``.

The policy file is re-read between batches when it changed (``before_batch``); a bad file keeps
the previous policy.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from consumers.policy import Policy, PolicySource, describe, env_policy, evaluate
from schemas.cloudevents import Envelope
from schemas.events import DecisionEvent, ModelAlias, Outcome, PredictionEvent
from scorestream import metrics
from scorestream.dlq import DeadLetter
from scorestream.entrypoint import run_service
from scorestream.kafka_config import admin_config
from scorestream.processor import Emit, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.decision")
SERVICE = "decision"
REPLYTO = "replyto"

DECISIONS = Counter(
    "scorestream_decisions_total", "Committed decisions by outcome", ["tenant", "outcome"]
)
REPLIES = Counter(
    "scorestream_decision_replies_total",
    "Request-reply copies of decisions, by result (sent, invalid)",
    ["tenant", "result"],
)
PREDICTION_TO_DECISION_SECONDS = Histogram(
    "scorestream_prediction_to_decision_seconds",
    "From the prediction being made to its decision being committed",
    ["tenant"],
    buckets=metrics.LATENCY_BUCKETS,
)


class DecisionSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_DECISION_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_DECISION_",
        frozen=True,
        extra="ignore",
    )

    service: ClassVar[str] = "decision"

    policy_file: Path | None = None
    """YAML policy (see consumers.policy); re-read between batches when it changes."""
    policy_version: str = Field(default="env-default", min_length=1, max_length=64)
    """Without a policy file: the version stamped on decisions made by the env thresholds."""
    review_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Without a policy file: a score at or above it (and below the decline threshold) is
    ``review``; below it, ``approve``. Must not exceed the decline threshold."""
    decline_threshold: float = Field(default=0.9, ge=0.0, le=1.0)
    """Without a policy file: a score at or above it is ``decline``."""

    def policy_source(self) -> PolicySource:
        if self.policy_file is not None:
            return PolicySource(self.tenant, path=self.policy_file)
        fixed = env_policy(
            version=self.policy_version,
            review=self.review_threshold,
            decline=self.decline_threshold,
        )
        return PolicySource(self.tenant, fixed=fixed)


# -- the pure part -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decided:
    envelope: Envelope[PredictionEvent]
    decision: DecisionEvent
    reply: tuple[str, int] | None


@dataclass(slots=True)
class DecisionOutput:
    decided: list[Decided] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    invalid_replies: list[str] = field(default_factory=list)
    """Why a ``replyto`` was ignored, one entry per ignored reply."""


def parse_replyto(value: str, allowed: Mapping[str, int]) -> tuple[str, int]:
    """``"<topic>/<partition>"`` → (topic, partition); ``allowed`` maps topic → partition count.

    Raises ``ValueError`` with the reason when the value is malformed or names a topic or
    partition this service may not write.
    """
    topic, sep, part = value.rpartition("/")
    if not sep or not topic or not part.isdigit():
        raise ValueError(f"replyto {value!r} is not '<topic>/<partition>'")
    partition = int(part)
    if topic not in allowed:
        raise ValueError(f"replyto topic {topic!r} is not one of {sorted(allowed)}")
    if partition >= allowed[topic]:
        raise ValueError(f"replyto partition {partition} >= {allowed[topic]} partitions of {topic}")
    return topic, partition


def decide_batch(
    batch: list[Envelope[PredictionEvent]],
    *,
    tenant: str,
    policy: Policy,
    reply_topics: Mapping[str, int],
    now: datetime | None = None,
) -> DecisionOutput:
    """Decide every prediction of one batch with one policy."""
    decided_at = (now or datetime.now(UTC)).astimezone(UTC)
    out = DecisionOutput()
    for env in batch:
        p = env.event
        if (dead := DeadLetter.other_tenant(env, p.tenant_id, tenant)) is not None:
            out.dead_letters.append(dead)
            continue
        if p.alias is not ModelAlias.CHAMPION:
            out.dead_letters.append(
                DeadLetter.for_envelope(
                    env,
                    "not_champion",
                    "NotChampion",
                    f"a {p.alias.value} prediction ({p.model_name}/{p.model_version}) "
                    "cannot decide; only champion scores belong on this topic",
                )
            )
            continue
        verdict = evaluate(policy, p)
        # every value is valid already (a decoded prediction, a parsed policy whose version has
        # the contract's constraints, a UTC time): built without validating again
        decision = DecisionEvent.trusted(
            {
                "transaction_id": p.transaction_id,
                "tenant_id": p.tenant_id,
                "account_id": p.account_id,
                "outcome": verdict.outcome,
                "score": p.score,
                "model_name": p.model_name,
                "model_version": p.model_version,
                "policy_version": policy.version,
                "reasons": verdict.reasons,
                "event_time": p.event_time,
                "decided_at": decided_at,
            }
        )
        reply: tuple[str, int] | None = None
        replyto = env.extensions.get(REPLYTO)
        if replyto is not None:
            try:
                reply = parse_replyto(replyto, reply_topics)
            except ValueError as exc:
                out.invalid_replies.append(f"{p.transaction_id}: {exc}")
        out.decided.append(Decided(env, decision, reply))
    return out


def to_result(out: DecisionOutput, decisions_topic: str) -> list[Emit]:
    """The emits of a batch: every decision, plus its reply copy when one was asked for."""
    emits: list[Emit] = []
    for d in out.decided:
        env = d.envelope
        emits.append(Emit.derived(decisions_topic, d.decision, env))
        if d.reply is not None:
            topic, partition = d.reply
            emits.append(Emit.derived(topic, d.decision, env, partition=partition))
    return emits


# -- the service ---------------------------------------------------------------------------------
def partition_counts(
    kafka: KafkaSettings, topics: list[str], timeout: float = 10.0
) -> dict[str, int]:
    """Partitions per existing topic, from the cluster's metadata (missing topics are left out)."""
    admin = AdminClient(admin_config(kafka, client_id=f"{SERVICE}-metadata"))
    out: dict[str, int] = {}
    for topic in topics:
        meta = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            out[topic] = len(meta.partitions)
    return out


class Decision:
    def __init__(
        self,
        settings: DecisionSettings,
        *,
        kafka: KafkaSettings | None = None,
        policy: PolicySource | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.input_topic = REGISTRY.topic("predictions", t)
        self.output_topic = REGISTRY.topic("decisions", t)
        self.replies_topic = REGISTRY.topic("replies", t)
        self.policy = policy or settings.policy_source()
        self.reply_topics: dict[str, int] = {}
        self._metadata_checked = 0.0
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=(self.input_topic,),
            accept=(PredictionEvent,),
            dlq_topics={self.input_topic: REGISTRY.dlq_topic("predictions", t)},
        )
        self.processor = Processor(
            config,
            self.handle,
            kafka=self.kafka,
            before_batch=self._before_batch,
            ready=self._ready,
        )

    def _before_batch(self) -> None:
        self.policy.check()  # a changed policy file takes effect between batches

    def _ready(self) -> tuple[bool, str]:
        detail = f"policy {self.policy.policy.version}"
        if self.policy.last_error is not None:
            detail += " (last reload failed; see logs)"
        return True, detail

    def _refresh_reply_topics(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._metadata_checked < 30.0:
            return
        self._metadata_checked = now
        try:
            self.reply_topics = partition_counts(self.kafka, [self.replies_topic])
        except Exception as exc:  # noqa: BLE001  (metadata is best effort; replies wait for it)
            log.warning("cannot read partitions of %s: %s", self.replies_topic, exc)
        if self.replies_topic not in self.reply_topics:
            log.warning("%s does not exist: replyto requests are ignored", self.replies_topic)

    def _routable(self, env: Envelope[Any]) -> bool:
        replyto = env.extensions.get(REPLYTO)
        if replyto is None:
            return True
        try:
            parse_replyto(replyto, self.reply_topics)
        except ValueError:
            return False
        return True

    def handle(self, batch: list[Envelope[Any]]) -> Result:
        if any(not self._routable(env) for env in batch):
            # the topic may have been created or grown since we looked: look again (throttled)
            self._refresh_reply_topics()
        out = decide_batch(
            batch,
            tenant=self.settings.tenant,
            policy=self.policy.policy,  # one policy per batch
            reply_topics=self.reply_topics,
        )
        for problem in out.invalid_replies[:10]:
            log.warning("replyto ignored: %s", problem)
        return Result(
            emits=to_result(out, self.output_topic),
            dead_letters=out.dead_letters,
            on_commit=lambda: self._count(out),
        )

    def _count(self, out: DecisionOutput) -> None:
        t = self.settings.tenant
        now = datetime.now(UTC)
        per_outcome: dict[Outcome, int] = {}
        replies = 0
        waited: list[float] = []
        for d in out.decided:
            outcome = d.decision.outcome
            per_outcome[outcome] = per_outcome.get(outcome, 0) + 1
            replies += d.reply is not None
            waited.append(max(0.0, (now - d.envelope.event.predicted_at).total_seconds()))
        metrics.observe_many(PREDICTION_TO_DECISION_SECONDS.labels(t), waited)
        for outcome, n in per_outcome.items():  # ``.value`` once per outcome, not per event
            DECISIONS.labels(t, outcome.value).inc(n)
        if replies:
            REPLIES.labels(t, "sent").inc(replies)
        if out.invalid_replies:
            REPLIES.labels(t, "invalid").inc(len(out.invalid_replies))

    def stop(self, *_: Any) -> None:
        self.processor.stop()

    def run(self, *, install_signals: bool = True) -> int:
        self._refresh_reply_topics(force=True)
        log.info("deciding with policy %s", dict(describe(self.policy.policy)))
        return self.processor.run(install_signals=install_signals)


def main(
    argv: list[str] | None = None, *, on_ready: Callable[[Decision], None] | None = None
) -> int:
    """Entry point of ``scorestream decision`` and of the container: every setting of
    :class:`DecisionSettings` from ``SCORESTREAM_DECISION_*`` or as a flag."""
    return run_service(SERVICE, DecisionSettings, Decision, argv, on_ready=on_ready)


if __name__ == "__main__":
    sys.exit(main())
