"""The decision policy (thresholds, rules, versions, reasons, YAML, reload) and the pure handler."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from consumers.decision import DecisionSettings, decide_batch, parse_replyto, to_result
from consumers.policy import (
    Policy,
    PolicyError,
    PolicySource,
    env_policy,
    evaluate,
    load_policy,
    parse_policy,
)
from schemas.cloudevents import Envelope
from schemas.errors import RawRecord
from schemas.events import DecisionEvent, ModelAlias, Outcome, PredictionEvent, PredictionTimings
from scorestream.errors import ConfigError, ScorestreamError

T0 = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)  # a Tuesday, 12:30 UTC

POLICY = """
version: "2026-11-24.1"
thresholds: {review: 0.5, decline: 0.9}
rules:
  - name: night-review
    outcome: review
    when: {hours_utc: [22, 6], min_score: 0.3}
  - name: legacy-model
    outcome: review
    when: {model_versions: ["1"]}
  - name: weekend-decline
    outcome: decline
    when: {weekdays: [sat, sun], min_score: 0.8}
  - name: test-accounts
    outcome: approve
    final: true
    when: {account_ids: [acc-test]}
  - name: after-final
    outcome: decline
    when: {account_ids: [acc-test]}
"""


def prediction(score: float, **overrides: object) -> PredictionEvent:
    fields: dict[str, object] = {
        "transaction_id": "tx-1",
        "tenant_id": "acme",
        "account_id": "acc-1",
        "score": score,
        "model_name": "fraud-gbt",
        "model_version": "2",
        "model_sha256": "a" * 64,
        "feature_spec_hash": "0123456789abcdef",
        "alias": ModelAlias.CHAMPION,
        "event_time": T0,
        "predicted_at": T0,
        "timings": PredictionTimings(queue_ms=1.0, inference_ms=0.5, batch_size=1),
    }
    fields.update(overrides)
    return PredictionEvent.model_validate(fields)


def env(p: PredictionEvent, **extensions: str) -> Envelope[PredictionEvent]:
    return Envelope(
        event=p,
        id=f"ce-{p.transaction_id}",
        source="tests",
        time=T0,
        type=p.ce_type,
        trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        extensions=dict(extensions),
        raw=RawRecord(key=p.account_id.encode(), value=p.model_dump_json().encode()),
    )


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY, tenant="acme")


# -- thresholds and rules -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("score", "outcome"),
    [
        (0.0, Outcome.APPROVE),
        (0.4999, Outcome.APPROVE),
        (0.5, Outcome.REVIEW),
        (0.8999, Outcome.REVIEW),
        (0.9, Outcome.DECLINE),
        (1.0, Outcome.DECLINE),
    ],
)
def test_thresholds_are_inclusive_lower_bounds(score: float, outcome: Outcome) -> None:
    p = env_policy(version="v1", review=0.5, decline=0.9)
    verdict = evaluate(p, prediction(score))
    assert verdict.outcome is outcome
    assert verdict.reasons == (f"threshold:{outcome.value}",)


def test_rules_escalate_and_list_their_reasons(policy: Policy) -> None:
    night = datetime(2026, 11, 24, 23, 15, tzinfo=UTC)
    early = datetime(2026, 11, 24, 5, 59, tzinfo=UTC)
    six = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    # wraps past midnight: 23:15 and 05:59 are in [22, 6), 06:00 is not
    assert evaluate(policy, prediction(0.35, event_time=night)).reasons == (
        "threshold:approve",
        "rule:night-review",
    )
    assert evaluate(policy, prediction(0.35, event_time=early)).outcome is Outcome.REVIEW
    assert evaluate(policy, prediction(0.35, event_time=six)).outcome is Outcome.APPROVE
    assert evaluate(policy, prediction(0.29, event_time=night)).outcome is Outcome.APPROVE
    # a rule never lowers the outcome unless it is final
    v = evaluate(policy, prediction(0.95, event_time=night))
    assert v.outcome is Outcome.DECLINE
    assert v.reasons == ("threshold:decline", "rule:night-review")
    # several rules fire, in order
    v = evaluate(policy, prediction(0.6, model_version="1", event_time=night))
    assert v.outcome is Outcome.REVIEW
    assert v.reasons == ("threshold:review", "rule:night-review", "rule:legacy-model")
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    v = evaluate(policy, prediction(0.85, event_time=saturday))
    assert (v.outcome, v.reasons) == (Outcome.DECLINE, ("threshold:review", "rule:weekend-decline"))
    assert evaluate(policy, prediction(0.85)).outcome is Outcome.REVIEW  # a Tuesday


def test_a_final_rule_sets_the_outcome_and_stops(policy: Policy) -> None:
    v = evaluate(policy, prediction(0.99, account_id="acc-test"))
    assert v.outcome is Outcome.APPROVE
    assert v.reasons == ("threshold:decline", "rule:test-accounts")  # after-final never runs


def test_score_range_and_model_name_conditions() -> None:
    p = parse_policy(
        """
        version: r1
        thresholds: {review: 0.7, decline: 0.95}
        rules:
          - {name: band, outcome: review, when: {min_score: 0.4, max_score: 0.6}}
          - {name: other-model, outcome: decline, when: {model_names: [experimental]}}
        """,
        tenant="acme",
    )
    assert evaluate(p, prediction(0.39)).outcome is Outcome.APPROVE
    assert evaluate(p, prediction(0.4)).reasons == ("threshold:approve", "rule:band")
    assert evaluate(p, prediction(0.6)).outcome is Outcome.APPROVE  # max_score is exclusive
    assert evaluate(p, prediction(0.1, model_name="experimental")).outcome is Outcome.DECLINE


def test_one_file_serves_several_tenants() -> None:
    text = """
    default: {version: base-1}
    tenants:
      acme: {version: acme-7, thresholds: {review: 0.2, decline: 0.4}}
    """
    assert parse_policy(text, tenant="acme").version == "acme-7"
    assert parse_policy(text, tenant="other").version == "base-1"
    assert parse_policy(text, tenant="other").thresholds.review == 0.5
    with pytest.raises(PolicyError, match="no policy for tenant 'other'"):
        parse_policy("tenants: {acme: {version: a}}", tenant="other")


# -- parsing errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: [unclosed", "invalid YAML: line 1, column"),
        ("version: a\n  bad: indent: here", "invalid YAML: line 2"),
        ("- a list", "expected a mapping"),
        ("", "expected a mapping"),
        ("version: 3", "version: Input should be a valid string"),
        ("thresholds: {review: 0.5}", "version: Field required"),
        ("version: a\nthresholds: {review: 0.9, decline: 0.5}", "must not exceed decline"),
        ("version: a\nthresholds: {review: 1.5}", "thresholds.review: Input should be less"),
        ("version: a\nthreshold: {review: 0.5}", "threshold: Extra inputs are not permitted"),
        (
            "version: a\nrules: [{name: x, outcome: review, when: {}}]",
            "at least one condition",
        ),
        (
            "version: a\nrules: [{name: x, outcome: maybe, when: {min_score: 0.1}}]",
            "rules.0.outcome",
        ),
        (
            "version: a\nrules: [{name: Bad Name, outcome: review, when: {min_score: 0.1}}]",
            "rules.0.name",
        ),
        (
            "version: a\nrules: [{name: x, outcome: review, when: {hours_utc: [25, 3]}}]",
            "rules.0.when.hours_utc.0",
        ),
        (
            "version: a\nrules: [{name: x, outcome: review, when: {weekdays: [friday]}}]",
            "rules.0.when.weekdays.0",
        ),
        (
            "version: a\nrules:\n"
            " - {name: x, outcome: review, when: {min_score: 0.1}}\n"
            " - {name: x, outcome: decline, when: {min_score: 0.2}}",
            "rule names must be unique: x",
        ),
        (
            "version: a\nrules:\n"
            " - {name: x, outcome: review, when: {min_score: 0.6, max_score: 0.5}}",
            "min_score must be below max_score",
        ),
    ],
)
def test_invalid_policies_raise_a_clear_typed_error(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, tenant="acme", source="p.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("policy p.yaml: ")
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ScorestreamError)


def test_unreadable_file_and_env_defaults(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "absent.yaml", tenant="acme")
    with pytest.raises(PolicyError, match="must not exceed decline"):
        env_policy(version="v", review=0.9, decline=0.5)
    settings = DecisionSettings(tenant="acme", policy_version="env-3", review_threshold=0.4)
    source = settings.policy_source()
    assert source.policy.version == "env-3"
    assert source.policy.thresholds.review == 0.4
    assert source.check() is False  # nothing to reload


# -- reload ---------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    # make the change visible even on a file system with coarse timestamps
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _reload_errors(tenant: str) -> float:
    value = REGISTRY.get_sample_value(
        "scorestream_decision_policy_reloads_total", {"tenant": tenant, "result": "error"}
    )
    return value or 0.0


def _last_error(source: PolicySource) -> PolicyError | None:
    return source.last_error


def test_reload_picks_up_changes_and_keeps_the_old_policy_on_a_broken_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('version: "v1"\nthresholds: {review: 0.5, decline: 0.9}\n')
    source = PolicySource("reload-t", path=path)
    assert source.policy.version == "v1"
    assert source.check() is False  # unchanged

    _write(path, 'version: "v2"\nthresholds: {review: 0.3, decline: 0.6}\n')
    assert source.check() is True
    assert source.policy.version == "v2"
    assert evaluate(source.policy, prediction(0.65)).outcome is Outcome.DECLINE

    errors = _reload_errors("reload-t")
    _write(path, 'version: "v3"\nthresholds: {review: 0.3, decline: [oops\n')
    assert source.check() is False
    assert source.policy.version == "v2"  # the old policy keeps deciding
    assert isinstance(_last_error(source), PolicyError)
    assert "invalid YAML" in str(_last_error(source))
    assert _reload_errors("reload-t") == errors + 1
    assert source.check() is False  # the same broken file is not re-read
    assert _reload_errors("reload-t") == errors + 1

    path.unlink()
    assert source.check() is False
    assert source.policy.version == "v2"

    _write(path, 'version: "v4"\n')
    assert source.check() is True
    assert source.policy.version == "v4"
    assert _last_error(source) is None
    assert (
        REGISTRY.get_sample_value(
            "scorestream_decision_policy_loaded", {"tenant": "reload-t", "version": "v4"}
        )
        == 1.0
    )
    assert (
        REGISTRY.get_sample_value(
            "scorestream_decision_policy_loaded", {"tenant": "reload-t", "version": "v2"}
        )
        == 0.0
    )


def test_a_broken_file_at_startup_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: [")
    with pytest.raises(PolicyError):
        PolicySource("acme", path=path)


# -- the handler ----------------------------------------------------------------------------------
def test_decide_batch_stamps_version_reasons_and_routes_replies(policy: Policy) -> None:
    replies = {"acme.replies": 6}
    now = datetime(2026, 11, 24, 12, 31, tzinfo=UTC)
    batch = [
        env(prediction(0.1, transaction_id="tx-a")),
        env(prediction(0.95, transaction_id="tx-b"), replyto="acme.replies/3"),
        env(prediction(0.6, transaction_id="tx-c"), replyto="acme.replies/9"),
        env(prediction(0.6, transaction_id="tx-d"), replyto="other.replies/0"),
        env(prediction(0.6, transaction_id="tx-e", tenant_id="other")),
        env(prediction(0.6, transaction_id="tx-f", alias=ModelAlias.CHALLENGER)),
    ]
    out = decide_batch(batch, tenant="acme", policy=policy, reply_topics=replies, now=now)
    assert [d.decision.transaction_id for d in out.decided] == ["tx-a", "tx-b", "tx-c", "tx-d"]
    a, b, c, _ = (d.decision for d in out.decided)
    assert (a.outcome, a.reasons) == (Outcome.APPROVE, ("threshold:approve",))
    assert (b.outcome, b.reasons) == (Outcome.DECLINE, ("threshold:decline",))
    assert c.outcome is Outcome.REVIEW
    assert {d.decision.policy_version for d in out.decided} == {"2026-11-24.1"}
    assert b.decided_at == now
    assert (b.score, b.model_name, b.model_version, b.event_time) == (0.95, "fraud-gbt", "2", T0)
    assert [d.reply for d in out.decided] == [None, ("acme.replies", 3), None, None]
    for d in out.decided:  # built trusted: what validating the same values gives
        assert d.decision == DecisionEvent.model_validate(dict(d.decision))
        assert DecisionEvent.model_validate_json(d.decision.model_dump_json()) == d.decision
    assert len(out.invalid_replies) == 2
    assert "partition 9 >= 6" in out.invalid_replies[0]
    assert "'other.replies' is not one of" in out.invalid_replies[1]
    assert [(dl.reason, dl.error) for dl in out.dead_letters] == [
        ("unknown_tenant", "TenantMismatch"),
        ("not_champion", "NotChampion"),
    ]
    assert out.dead_letters[0].raw.value == batch[4].event.model_dump_json().encode()

    emits = to_result(out, "acme.decisions")
    assert [(e.topic, e.partition) for e in emits] == [
        ("acme.decisions", None),
        ("acme.decisions", None),
        ("acme.replies", 3),
        ("acme.decisions", None),
        ("acme.decisions", None),
    ]
    assert emits[2].event is emits[1].event
    assert emits[1].extensions == {"replyto": "acme.replies/3"}  # carried on
    assert emits[0].trace == batch[0].trace


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("acme.replies", "is not '<topic>/<partition>'"),
        ("acme.replies/", "is not '<topic>/<partition>'"),
        ("/3", "is not '<topic>/<partition>'"),
        ("acme.replies/-1", "is not '<topic>/<partition>'"),
        ("acme.replies/x", "is not '<topic>/<partition>'"),
        ("acme.decisions/0", "is not one of"),
        ("acme.replies/6", "partition 6 >= 6"),
    ],
)
def test_parse_replyto_rejects_what_the_transaction_could_not_write(
    value: str, problem: str
) -> None:
    assert parse_replyto("acme.replies/5", {"acme.replies": 6}) == ("acme.replies", 5)
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_replyto(value, {"acme.replies": 6})


def test_malformed_extension_names_are_not_carried_on(policy: Policy) -> None:
    e = env(prediction(0.2), replyto="acme.replies/1", **{"Bad-Name": "x", "ok2": "y"})
    out = decide_batch([e], tenant="acme", policy=policy, reply_topics={"acme.replies": 6})
    emits = to_result(out, "acme.decisions")
    assert [dict(x.extensions or {}) for x in emits] == [
        {"replyto": "acme.replies/1", "ok2": "y"}
    ] * 2
