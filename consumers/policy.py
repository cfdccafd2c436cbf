"""Decision policies as data: score thresholds plus simple rules, per tenant, reloadable.

A policy is a YAML document (or, without a file, the ``SCORESTREAM_DECISION_*`` env defaults)::

    version: "2026-11-24.1"          # a quoted string; becomes DecisionEvent.policy_version
    thresholds:
      review: 0.5                    # score >= review  -> review
      decline: 0.9                   # score >= decline -> decline
    rules:                           # optional; evaluated in order after the thresholds
      - name: night-review           # lower-case; becomes the reason "rule:night-review"
        outcome: review
        when:                        # every condition given must hold
          hours_utc: [0, 6]          # event_time hour in [0, 6); [22, 6] wraps past midnight
          min_score: 0.3
      - name: test-accounts
        outcome: approve
        final: true                  # sets the outcome and stops; otherwise rules only escalate
        when:
          account_ids: [acc-test-1]

Conditions (all optional, at least one per rule): ``min_score`` (score >= x), ``max_score``
(score < x), ``model_names``, ``model_versions``, ``account_ids``, ``hours_utc`` ([start, end),
UTC hours of the transaction's own ``event_time``), ``weekdays`` (``mon`` ... ``sun``).

Evaluation: the thresholds give the base outcome (reason ``threshold:<outcome>``); each matching
rule then either escalates the outcome to at least its own (approve < review < decline) or, when
``final``, sets it and ends the evaluation. ``reasons`` lists every rule that fired, in order.

One file can serve several tenants: a top-level ``tenants:`` mapping of tenant id → policy, with
an optional ``default:`` policy for tenants not listed.

Limitation: rules can only use what a :class:`~schemas.events.PredictionEvent` carries. It has no
amount, so amount limits are not expressible yet; they need the amount on the prediction (an
additive schema change) or a join with the transaction.

Reload: :class:`PolicySource` re-reads the file when its modification time (or size, inode)
changes; the decision service checks between batches, so each batch is decided by one policy. A
file that fails to parse or validate keeps the previous policy; the error is logged and counted.
Kubernetes ConfigMap volumes update by swapping a symlink, which ``stat`` follows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from schemas.events import Outcome, PredictionEvent
from scorestream.errors import ConfigError

log = logging.getLogger("scorestream.decision.policy")

SEVERITY: dict[Outcome, int] = {Outcome.APPROVE: 0, Outcome.REVIEW: 1, Outcome.DECLINE: 2}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

POLICY_RELOADS = Counter(
    "scorestream_decision_policy_reloads_total",
    "Policy file reloads by result (ok, error)",
    ["tenant", "result"],
)
POLICY_LOADED = Gauge(
    "scorestream_decision_policy_loaded",
    "1 for the policy version deciding now",
    ["tenant", "version"],
)


class PolicyError(ConfigError):
    """A policy document cannot be read, parsed or validated. ``problems`` lists each issue."""

    def __init__(self, message: str, *, source: str, problems: tuple[str, ...] = ()) -> None:
        self.source = source
        self.problems = problems
        detail = "; ".join(problems)
        super().__init__(f"policy {source}: {message}" + (f": {detail}" if detail else ""))


Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_STRICT = ConfigDict(frozen=True, extra="forbid")  # lax: YAML lists become tuples


class Thresholds(BaseModel):
    model_config = _STRICT

    review: Probability = 0.5
    decline: Probability = 0.9

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review > self.decline:
            raise ValueError(f"review ({self.review}) must not exceed decline ({self.decline})")
        return self


class Conditions(BaseModel):
    model_config = _STRICT

    min_score: Probability | None = None
    max_score: Probability | None = None
    model_names: tuple[str, ...] | None = None
    model_versions: tuple[str, ...] | None = None
    account_ids: tuple[str, ...] | None = None
    hours_utc: (
        tuple[Annotated[int, Field(ge=0, le=23)], Annotated[int, Field(ge=0, le=24)]] | None
    ) = None
    weekdays: tuple[Weekday, ...] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Conditions:
        if all(v is None for v in self.__dict__.values()):
            raise ValueError("a rule needs at least one condition under 'when'")
        if (
            self.min_score is not None
            and self.max_score is not None
            and self.min_score >= self.max_score
        ):
            raise ValueError("min_score must be below max_score")
        if self.hours_utc is not None and self.hours_utc[0] == self.hours_utc[1] % 24:
            raise ValueError("hours_utc [start, end) is empty; use [0, 24] for the whole day")
        return self

    def match(self, p: PredictionEvent) -> bool:
        if self.min_score is not None and p.score < self.min_score:
            return False
        if self.max_score is not None and p.score >= self.max_score:
            return False
        if self.model_names is not None and p.model_name not in self.model_names:
            return False
        if self.model_versions is not None and p.model_version not in self.model_versions:
            return False
        if self.account_ids is not None and p.account_id not in self.account_ids:
            return False
        if self.hours_utc is not None:
            start, end = self.hours_utc
            hour = p.event_time.hour
            inside = start <= hour < end if start < end else hour >= start or hour < end
            if not inside:
                return False
        return self.weekdays is None or WEEKDAYS[p.event_time.weekday()] in self.weekdays


class Rule(BaseModel):
    model_config = _STRICT

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    outcome: Outcome
    when: Conditions
    final: StrictBool = False
    description: str = ""


class Policy(BaseModel):
    """One tenant's policy. ``version`` ends up in every DecisionEvent it decides."""

    model_config = _STRICT

    version: Annotated[str, Field(min_length=1, max_length=64)]
    thresholds: Thresholds = Thresholds()
    rules: tuple[Rule, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        return self


class PolicyFile(BaseModel):
    """A document holding policies for several tenants."""

    model_config = _STRICT

    tenants: dict[str, Policy] = Field(default_factory=dict)
    default: Policy | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]


def evaluate(policy: Policy, prediction: PredictionEvent) -> Verdict:
    """Apply ``policy`` to one prediction: thresholds first, then the rules in order."""
    t = policy.thresholds
    if prediction.score >= t.decline:
        outcome = Outcome.DECLINE
    elif prediction.score >= t.review:
        outcome = Outcome.REVIEW
    else:
        outcome = Outcome.APPROVE
    reasons = [f"threshold:{outcome.value}"]
    for rule in policy.rules:
        if not rule.when.match(prediction):
            continue
        reasons.append(f"rule:{rule.name}")
        if rule.final:
            outcome = rule.outcome
            break
        if SEVERITY[rule.outcome] > SEVERITY[outcome]:
            outcome = rule.outcome
    return Verdict(outcome, tuple(reasons))


# -- parsing -------------------------------------------------------------------------------------
def _problems(exc: ValidationError, prefix: str = "") -> tuple[str, ...]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        where = ".".join(p for p in (prefix, loc) if p) or "<root>"
        out.append(f"{where}: {err['msg']}")
    return tuple(out)


def parse_policy(text: str, *, tenant: str, source: str = "<text>") -> Policy:
    """Parse a YAML policy document and return the policy for ``tenant``.

    Raises :class:`PolicyError` with the YAML position or the offending fields.
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError("invalid YAML", source=source, problems=(f"{where}{problem}",)) from exc
    if not isinstance(data, dict):
        raise PolicyError(
            "expected a mapping with 'version' (one policy) or 'tenants'/'default'",
            source=source,
        )
    try:
        if "tenants" in data or "default" in data:
            doc = PolicyFile.model_validate(data)
            policy = doc.tenants.get(tenant, doc.default)
            if policy is None:
                raise PolicyError(
                    f"no policy for tenant {tenant!r} and no 'default'", source=source
                )
            return policy
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError("invalid policy", source=source, problems=_problems(exc)) from exc


def load_policy(path: Path, *, tenant: str) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the file ({exc})", source=str(path)) from exc
    return parse_policy(text, tenant=tenant, source=str(path))


def env_policy(*, version: str, review: float, decline: float) -> Policy:
    """The policy from env defaults (no file): thresholds only."""
    try:
        return Policy(version=version, thresholds=Thresholds(review=review, decline=decline))
    except ValidationError as exc:
        raise PolicyError("invalid env defaults", source="env", problems=_problems(exc)) from exc


# -- reloading -----------------------------------------------------------------------------------
def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap update swaps the ..data link
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class PolicySource:
    """The current policy of one tenant: from a file (reloadable) or a fixed policy.

    :meth:`check` re-reads the file when it changed since the last attempt. A failed reload keeps
    the current policy and is retried only when the file changes again.
    """

    def __init__(
        self, tenant: str, *, path: Path | None = None, fixed: Policy | None = None
    ) -> None:
        self.tenant = tenant
        self.path = path
        self.last_error: PolicyError | None = None
        self._stamp: tuple[int, int, int] | None = None
        if path is not None:
            self._stamp = _stamp(path)
            self._policy = load_policy(path, tenant=tenant)  # fail fast at startup
        elif fixed is not None:
            self._policy = fixed
        else:
            raise ValueError("give a policy file or a fixed policy")
        self.reloads = 0
        POLICY_LOADED.labels(tenant, self._policy.version).set(1)

    @property
    def policy(self) -> Policy:
        return self._policy

    def check(self) -> bool:
        """Reload if the file changed. True when a new policy took effect."""
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            new = load_policy(self.path, tenant=self.tenant)
        except PolicyError as exc:
            self.last_error = exc
            POLICY_RELOADS.labels(self.tenant, "error").inc()
            log.error(
                "policy reload failed; still deciding with version %s: %s",
                self._policy.version,
                exc,
                extra={"policy_version": self._policy.version},
            )
            return False
        old = self._policy
        self._policy = new
        self.last_error = None
        self.reloads += 1
        POLICY_RELOADS.labels(self.tenant, "ok").inc()
        if old.version != new.version:
            POLICY_LOADED.labels(self.tenant, old.version).set(0)
        POLICY_LOADED.labels(self.tenant, new.version).set(1)
        log.info(
            "policy reloaded: version %s -> %s (%d rules)",
            old.version,
            new.version,
            len(new.rules),
            extra={"policy_version": new.version},
        )
        return True


def describe(policy: Policy) -> Mapping[str, Any]:
    """A JSON-friendly summary for logs."""
    return {
        "version": policy.version,
        "review": policy.thresholds.review,
        "decline": policy.thresholds.decline,
        "rules": [r.name for r in policy.rules],
    }
