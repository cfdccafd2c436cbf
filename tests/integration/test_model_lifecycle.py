"""Publish, promote and retrain through the real broker: the tenant's model-events is the source
of truth."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines import lifecycle, training
from pipelines.repository import ModelRepository
from schemas.events import ModelAlias
from scorestream.admin import ensure_topics
from scorestream.errors import FeatureSpecMismatchError, ModelIntegrityError, ModelNotFoundError
from scorestream.model_events import read_model_events
from scorestream.topics import REGISTRY
from tests.model_factory import tiny_model
from tests.unit.test_training import CONFIG, small_sim

pytestmark = pytest.mark.integration


@pytest.fixture
def names() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"t{run}", f"m-{run}"


@pytest.fixture
def model_events(kafka_bootstrap: str, names: tuple[str, str]) -> None:
    tenant, _ = names
    ensure_topics(
        {REGISTRY.topic(s, tenant): REGISTRY.get(s) for s in ("model-events", "model-rejections")}
    )


def _events_for(tenant: str, name: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    state = read_model_events(tenant)
    published = sorted(v for (n, v) in state.published if n == name)
    promoted = sorted(
        (t, a.value, e.model_version) for (t, n, a), e in state.promoted.items() if n == name
    )
    return published, promoted


def test_publish_and_promote_are_events(
    model_events: None, names: tuple[str, str], tmp_path: Path
) -> None:
    tenant, name = names
    repo = ModelRepository(str(tmp_path / "models"))
    data, meta = tiny_model("1", name=name)
    event = lifecycle.publish(repo, training.TrainingResult(meta, data, 0.0), tenant=tenant)
    assert event.sha256 == meta.sha256
    lifecycle.promote(repo, tenant=tenant, name=name, version="1", reason="test")
    assert _events_for(tenant, name) == (["1"], [(tenant, "champion", "1")])
    assert lifecycle.serving_version(tenant, name, ModelAlias.CHAMPION) == "1"

    # the genuine Kafka CLI shows the promotion (key = tenant/model/alias)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scorestream",
            "kafka",
            "kafka-console-consumer",
            "--topic",
            f"{tenant}.model-events",
            "--from-beginning",
            "--timeout-ms",
            "8000",
            "--property",
            "print.key=true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f"{tenant}/{name}/champion"))
    assert '"kind":"promoted"' in line
    assert '"model_version":"1"' in line


def test_bad_promotions_emit_nothing(
    model_events: None, names: tuple[str, str], tmp_path: Path
) -> None:
    tenant, name = names
    repo = ModelRepository(str(tmp_path / "models"))
    with pytest.raises(ModelNotFoundError):
        lifecycle.promote(repo, tenant=tenant, name=name, version="404")
    data, meta = tiny_model("1", name=name)
    repo.publish(data, meta)
    path = tmp_path / "models" / name / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelIntegrityError):
        lifecycle.promote(repo, tenant=tenant, name=name, version="1")
    foreign = meta.model_copy(update={"version": "2", "feature_spec_hash": "0000000000000000"})
    repo.publish(data, foreign)
    with pytest.raises(FeatureSpecMismatchError):
        lifecycle.promote(repo, tenant=tenant, name=name, version="2")
    assert _events_for(tenant, name) == ([], [])


@pytest.mark.slow
def test_retrain_gate_champion_then_challenger(
    model_events: None, names: tuple[str, str], tmp_path: Path
) -> None:
    tenant, name = names
    repo = ModelRepository(str(tmp_path / "models"))
    sim = small_sim()
    txs, labels = [t.event for t in sim.transactions], list(sim.labels)
    cfg = training.TrainConfig(
        model_name=name, n_estimators=CONFIG.n_estimators, train_days=21, delay_days=7, test_days=7
    )
    first = lifecycle.retrain(repo, txs, labels, tenant=tenant, name=name, source="sim", config=cfg)
    assert first.decision is ModelAlias.CHAMPION  # no champion yet
    assert first.champion is None
    # a margin no model can meet: the new version only shadows
    second = lifecycle.retrain(
        repo, txs, labels, tenant=tenant, name=name, source="sim", config=cfg, margin=1.0
    )
    assert second.decision is ModelAlias.CHALLENGER
    assert second.champion is not None
    assert second.champion.version == first.candidate.version
    assert second.champion_ap == pytest.approx(first.candidate_ap, abs=1e-9)  # same window
    assert "not passed" in second.render()
    published, promoted = _events_for(tenant, name)
    assert published == ["1", "2"]
    assert promoted == [(tenant, "challenger", "2"), (tenant, "champion", "1")]
