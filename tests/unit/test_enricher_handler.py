"""The enricher's handler on domain objects, without Kafka: features, the spliced payload,
duplicates, moved records and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from consumers.enricher import AccountCodec, EnrichHandler, MerchantTable
from schemas.cloudevents import decode, encode
from schemas.errors import RawRecord
from schemas.events import EnrichedTransaction, TransactionEvent
from scorestream.features import ENGINE, FEATURE_SPEC, AccountState, feature_dicts, id_hash
from scorestream.features.engine import ACCOUNT_STATE_VERSION
from scorestream.partitioning import partition_for
from scorestream.settings import KafkaSettings
from scorestream.state import PartitionStore, StateStore
from tests.factories import transaction

TENANT = "acme"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def handler(partitions: int = 1) -> EnrichHandler:
    store: StateStore[AccountState] = StateStore(
        "accounts",
        source=f"{TENANT}.transactions",
        changelog=f"{TENANT}.enricher.state",
        codec=AccountCodec(ENGINE),
        kafka=KafkaSettings(),
        group_id=f"{TENANT}.enricher",
    )
    for p in range(partitions):
        store.partitions[p] = PartitionStore(p)
    h = EnrichHandler(
        tenant=TENANT, engine=ENGINE, accounts=store, merchants=MerchantTable(ENGINE, TENANT)
    )
    h.input_partitions = partitions
    return h


def tx(i: int, **changes: Any) -> TransactionEvent:
    base = transaction().model_copy(
        update={
            "tenant_id": TENANT,
            "transaction_id": f"tx-{i}",
            "account_id": "acc-1",
            "timestamp": T0 + timedelta(minutes=7 * i),
            "amount_minor": 1000 + 13 * i,
        }
    )
    return base.model_copy(update=changes)


def envelope(event: TransactionEvent, *, key: bytes | None = None, partition: int = 0) -> Any:
    m = encode(event, source="tests", extensions={"replyto": "acme.replies/0"})
    raw = RawRecord(
        key=m.key if key is None else key,
        value=m.value,
        headers=list(m.headers),
        topic=f"{TENANT}.transactions",
        partition=partition,
        offset=7,
    )
    return decode(raw, [TransactionEvent])


def test_features_are_the_offline_paths_and_the_payload_decodes_to_the_event() -> None:
    h = handler()
    txs = [tx(i) for i in range(8)]
    result = h.handle([envelope(t) for t in txs])
    assert len(result.emits) == 8
    assert not result.dead_letters
    expected = feature_dicts(txs)  # no merchant table: zeros, as-of None, offline alike
    for emit, t, features in zip(result.emits, txs, expected, strict=True):
        event = emit.event
        assert isinstance(event, EnrichedTransaction)
        assert event.transaction == t
        # the offline matrix is float32, the model's input type
        assert {k: np.float32(v) for k, v in event.features.items()} == {
            k: np.float32(v) for k, v in features.items()
        }
        assert event.feature_spec_hash == FEATURE_SPEC.hash
        assert emit.value is not None
        assert EnrichedTransaction.model_validate_json(emit.value) == event
        assert emit.extensions is not None
        assert emit.extensions["replyto"] == "acme.replies/0", "extensions carried on"
        assert "ingesttime" in emit.extensions
    changes = dict(h.accounts.partition(0).changes())
    assert list(changes) == ["acc-1"], "one changelog write per key per batch"


def test_a_republished_transaction_is_enriched_again_but_counted_once() -> None:
    h = handler()
    first = h.handle([envelope(tx(0)), envelope(tx(1))])
    h.accounts.commit()
    again = h.handle([envelope(tx(1)), envelope(tx(2))])
    counts = [e.event.features["acc_count_1d"] for e in [*first.emits, *again.emits]]
    assert counts == [1.0, 2.0, 2.0, 3.0]


def test_a_record_on_another_partition_is_moved_to_its_keys() -> None:
    h = handler(partitions=6)
    home = partition_for(b"acc-1", 6)
    elsewhere = (home + 1) % 6
    result = h.handle([envelope(tx(0), partition=elsewhere)])
    assert not result.emits
    assert not result.dead_letters
    [moved] = result.records
    assert moved.partition == home
    assert moved.topic == f"{TENANT}.transactions"
    assert moved.key == b"acc-1"
    assert ("scorestream.rerouted-from", f"{elsewhere}@7".encode()) in moved.headers
    # moved once already and still not home: a dead letter, not a loop
    again = envelope(tx(0), partition=elsewhere)
    again.raw.headers.append(("scorestream.rerouted-from", b"1@2"))
    result = h.handle([again])
    assert [d.reason for d in result.dead_letters] == ["wrong_partition"]


@pytest.mark.parametrize(
    ("event", "key", "reason"),
    [
        (tx(0, tenant_id="someone-else"), None, "unknown_tenant"),
        (tx(0), b"not-the-account", "key_mismatch"),
    ],
    ids=["foreign-tenant", "mis-keyed"],
)
def test_refused_records_are_dead_letters(
    event: TransactionEvent, key: bytes | None, reason: str
) -> None:
    h = handler()
    result = h.handle([envelope(event, key=key)])
    assert not result.emits
    assert [d.reason for d in result.dead_letters] == [reason]
    assert not h.accounts.partition(0).dirty, "nothing counted"


def test_a_copy_of_one_publish_is_dropped_and_a_republication_is_not() -> None:
    """The same record twice (same transaction id and ce_id: a producer's retry stored twice)
    yields one enriched record; the same transaction under a new event id is enriched again."""
    h = handler()
    first = envelope(tx(0))
    assert len(h.handle([first]).emits) == 1
    h.accounts.commit()
    assert first.raw is not None
    copy = decode(first.raw, [TransactionEvent])
    assert copy.id == first.id
    assert h.handle([copy]).emits == []
    republished = envelope(tx(0))  # a new event id
    assert len(h.handle([republished]).emits) == 1


def test_the_copy_check_survives_the_state_round_trip() -> None:
    h = handler()
    first = envelope(tx(0))
    h.handle([first])
    state = h.accounts.partition(0).get("acc-1")
    assert state is not None
    codec = AccountCodec(ENGINE)
    back = codec.decode(codec.encode(state))
    assert back.eids == state.eids
    assert ENGINE.is_copy(back, tx(0), id_hash(first.id))
    old_format = AccountState.from_bytes(
        b'{"v": %d, "g": {}, "i": []}' % ACCOUNT_STATE_VERSION, ENGINE.signatures
    )
    assert old_format.eids == {}
