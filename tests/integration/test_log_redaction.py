"""No secret and no full card number in any log line or HTTP error body.

Every service runs as a real process connected to the broker's SCRAM listener with a *canary*
password (a SCRAM user per service with the registry's ACLs, as in production) and logs the
Kafka client configuration it connects with; the gateway runs with a real API key, and a wrong
key made of the canary is tried too. Traffic carries a canary card number: in a valid
transaction through the gateway, in invalid requests (422/404/401 bodies), and in the key,
payload and headers of bad records sent to every consuming service's input (each ends in a DLQ
and a ``dead-lettered`` log line). Then no canary may appear in any log file or response body —
the card number only masked (first six and last four digits).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from producers.gateway.auth import new_key
from scorestream import security
from scorestream.admin import ensure_tenant_topics
from scorestream.kafka_config import admin_config
from scorestream.settings import BrokerSettings, KafkaSettings
from scorestream.supervisor import ServiceSpec, Supervisor
from scorestream.topics import REGISTRY
from scorestream.up import service_specs
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import Tenant, free_port, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def luhn_pan(rng: random.Random) -> str:
    """A random 16-digit, Luhn-valid, Visa-like number: indistinguishable from a real PAN."""
    body = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(body)):
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 == 0 else d
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


@dataclasses.dataclass
class Canaries:
    secret: str
    pan: str
    api_key: str = ""
    """The gateway API key the test uses: its secret part must not be logged either."""

    def leaks(self, text: str) -> list[str]:
        found = []
        if self.secret in text:
            found.append("secret")
        # the secret is everything after ssk_<id>_ (token_urlsafe: may itself contain "_"; the
        # tail after its last "_" can be 2 characters long and then matches any log by chance)
        if self.api_key and self.api_key.split("_", 2)[2] in text:
            found.append("api key")
        digits_only = re.sub(r"(?<=\d)[ -](?=\d)", "", text)
        if self.pan in digits_only:
            found.append("pan")
        return found

    @property
    def masked(self) -> str:
        return f"{self.pan[:6]}******{self.pan[-4:]}"


@pytest.fixture
def sasl_bootstrap(kafka_bootstrap: str) -> str:
    from scorestream.broker.state import read_state  # noqa: PLC0415

    state = read_state(BrokerSettings().home)
    if state is None or state.bootstrap != kafka_bootstrap:
        pytest.skip("needs the local broker's SCRAM listener")
    return state.sasl_bootstrap


@pytest.fixture
def canary_stack(
    kafka_bootstrap: str, sasl_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Tenant, Supervisor, Canaries]]:
    canaries = Canaries(
        secret=f"CANARY-secret-{uuid.uuid4().hex}",
        pan=luhn_pan(random.Random(uuid.uuid4().int)),
    )
    tenant = Tenant(f"rd{uuid.uuid4().hex[:9]}", tmp_path / "models")
    ensure_tenant_topics(tenant.name)
    canaries.api_key, line = new_key(tenant.name)
    keys_file = tmp_path / "gateway-keys"
    keys_file.write_text(line + "\n")
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", str(tenant.repo_dir))
    tenant.publish_model("1")
    tenant.promote("1")
    admin = AdminClient(admin_config(KafkaSettings(), client_id="redaction-test-admin"))
    specs = service_specs(tenant.name, gateway_port=free_port(), api_keys_file=keys_file)
    names = [s.name for s in specs]
    principals = security.provision(admin, tenant.name, names)
    run: list[ServiceSpec] = []
    for spec in specs:
        username = principals[spec.name].username
        password = f"{canaries.secret}-{spec.name}"  # the canary is in every password
        security.set_scram_password(admin, username, password)
        env = security.client_env(sasl_bootstrap, username, password)
        run.append(dataclasses.replace(spec, env=(*spec.env, *env.items())))
    supervisor = Supervisor(tenant.name)
    for old in supervisor.dir.glob("*.log") if supervisor.dir.exists() else ():
        old.unlink()
    supervisor.start(run)
    try:
        for name, port in supervisor.ports().items():
            wait_until(lambda port=port: http_get(port, "/readyz")[0] == 200, 120, f"{name} ready")
        yield tenant, supervisor, canaries
    finally:
        supervisor.stop()
        security.deprovision(admin, tenant.name, names)


def _tx(tenant: str, **fields: object) -> dict[str, object]:
    return {
        "transaction_id": f"rd-{uuid.uuid4().hex[:8]}",
        "tenant_id": tenant,
        "account_id": "acc-1",
        "merchant_id": "mer-1",
        "amount_minor": 4200,
        "currency": "EUR",
        "timestamp": "2026-11-24T12:00:00Z",
        "channel": "ecommerce",
        "country": "DE",
        "mcc": "5411",
    } | fields


def _bad_records(c: Canaries, ce_type: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"ev-{c.pan}".encode()),
        ("ce_source", b"tests/redaction"),
        ("ce_type", ce_type.encode()),
        ("content-type", b"application/json"),
    ]
    spaced = " ".join(c.pan[i : i + 4] for i in range(0, 16, 4))
    return [
        # a schema violation whose key, id and payload carry the card number
        (c.pan.encode(), json.dumps({"card_number": c.pan, "pan": spaced}).encode(), headers),
        # not JSON at all, with the number inside
        (spaced.encode(), f"card={c.pan} cvv=123".encode(), headers),
        # no CloudEvents headers
        (c.pan.encode(), json.dumps({"card_number": c.pan}).encode(), []),
    ]


def test_canary_secret_and_card_number_never_reach_logs_or_error_bodies(
    kafka_bootstrap: str, canary_stack: tuple[Tenant, Supervisor, Canaries]
) -> None:
    tenant, supervisor, c = canary_stack
    name = tenant.name
    gateway = f"http://127.0.0.1:{supervisor.ports()['gateway']}"
    bodies: list[str] = []
    auth = {"Authorization": f"Bearer {c.api_key}"}
    with httpx.Client(base_url=gateway, timeout=30, headers=auth) as http:
        # a valid transaction carrying the number where an identifier is allowed: the services
        # run under the canary credentials, end to end
        ok = http.post("/v1/transactions:score", json=_tx(name, merchant_id=c.pan))
        assert ok.status_code == 200, ok.text
        spaced = " ".join(c.pan[i : i + 4] for i in range(0, 16, 4))
        for status, resp in (
            (422, http.post("/v1/transactions", json=_tx(name, account_id=spaced))),
            (422, http.post("/v1/transactions", json=_tx(name, amount_minor=c.pan))),
            (422, http.post("/v1/transactions", json=_tx(name, currency=c.pan))),
            (
                422,
                http.post(
                    "/v1/transactions",
                    content=f'{{"pan": {c.pan},'.encode(),
                    headers={"content-type": "application/json"},
                ),
            ),
            (422, http.post("/v1/transactions:score", json=_tx(name, card_country=c.pan))),
            (404, http.get(f"/v1/cards/{c.pan}")),
            # a wrong key made of the canary secret: 401, and the presented key is not echoed
            (
                401,
                httpx.post(
                    f"{gateway}/v1/transactions",
                    json=_tx(name),
                    headers={"Authorization": f"Bearer ssk_0123456789ab_{c.secret}"},
                    timeout=30,
                ),
            ),
        ):
            assert resp.status_code == status, (status, resp.text)
            bodies.append(resp.text)

    streams = {
        "transactions": "scorestream.transaction.v1",
        "transactions.enriched": "scorestream.transaction.enriched.v1",
        "predictions": "scorestream.prediction.v1",
        "decisions": "scorestream.decision.v1",
    }
    for stream, ce_type in streams.items():
        produce_raw(kafka_bootstrap, REGISTRY.topic(stream, name), _bad_records(c, ce_type))
    for stream in streams:
        dlq = REGISTRY.topic(f"{stream}.dlq", name)
        got = read_messages(kafka_bootstrap, dlq, 3, timeout=180)
        assert len(got) >= 3, f"{dlq}: {len(got)} dead letters"

    # each processor-based consumer logged its dead letters (masked) and its client config
    logs_dir = supervisor.dir

    def logged(service: str, needle: str) -> bool:
        path = logs_dir / f"{service}.log"
        return path.exists() and needle in path.read_text(errors="replace")

    for service in ("worker", "decision", "notifier", "audit"):
        wait_until(lambda s=service: logged(s, "dead-lettered"), 60, f"{service} DLQ log line")
        assert logged(service, c.masked), f"{service}: the masked key is not in its log"
        assert logged(service, '"sasl.password": "***"'), f"{service}: no config line"
    time.sleep(1.0)
    supervisor.stop()  # shutdown lines too

    leaks = {}
    files = sorted(logs_dir.glob("*.log"))
    assert {f.stem for f in files} >= {"gateway", "worker", "decision", "notifier", "audit"}
    for path in files:
        found = c.leaks(path.read_text(errors="replace"))
        if found:
            leaks[path.name] = found
    for i, body in enumerate(bodies):
        found = c.leaks(body)
        if found:
            leaks[f"http body {i}"] = found
    assert leaks == {}
