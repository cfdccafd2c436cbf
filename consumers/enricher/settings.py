"""The enricher's settings, constants and metrics."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import ClassVar

from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from scorestream.settings import ProcessingSettings

log = logging.getLogger("scorestream.enricher")

SERVICE = "enricher"
CLOCK_KEY = "__clock__"
"""The key of the merchant table's per-partition clock records (no merchant id starts with _)."""
REROUTED_HEADER = "scorestream.rerouted-from"
CACHE_MAX = 200_000
"""Merchant feature values cached per (merchant, as-of); the whole cache is dropped beyond."""

DUPLICATES = Counter(
    "scorestream_enricher_duplicates_total",
    "Transactions re-published with a recently seen id: enriched, not counted again",
    ["tenant"],
)
COPIES = Counter(
    "scorestream_enricher_copies_dropped_total",
    "Records with the transaction id and the event id (ce_id) of a recent one: copies of one "
    "publish, dropped (a re-publication under a new event id is enriched, see duplicates)",
    ["tenant"],
)
REROUTED = Counter(
    "scorestream_enricher_rerouted_total",
    "Transactions moved to the partition their key hashes to (producer without murmur2)",
    ["tenant"],
)
FRESHNESS = Histogram(
    "scorestream_enricher_merchant_freshness_seconds",
    "Event time of a transaction minus the as-of of the merchant features it was served",
    ["tenant"],
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 6 * 3600, 86400, 7 * 86400),
)
NO_TABLE = Counter(
    "scorestream_enricher_merchant_table_missing_total",
    "Transactions served without merchant features (the merchant table is not complete yet)",
    ["tenant"],
)
TABLE_AS_OF = Gauge(
    "scorestream_merchant_table_as_of_seconds",
    "The time (epoch s) up to which the merchant table is complete, as this enricher sees it",
    ["tenant"],
)
ACCOUNTS = Gauge("scorestream_enricher_accounts", "Accounts in the local state store", ["tenant"])


class EnricherSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_ENRICHER_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_ENRICHER_",
        frozen=True,
        extra="ignore",
    )

    service: ClassVar[str] = "enricher"

    instance_id: str = "enricher-0"
    """Stable per instance: it is the transactional.id suffix that fences a previous instance."""
    state_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "scorestream" / "enricher-state"
    )
    """Where checkpoints of the account store are written on a clean shutdown (optional:
    without one, the store is rebuilt from its changelog)."""
    restore_timeout_s: float = Field(default=120.0, gt=0)
    """Longest a restore of the account store from its changelog may take on assignment, then
    the service stops with an error. Keep it above ``transaction_timeout_s``: a dead instance's
    open transaction can hold the restore back that long."""
    table_timeout_s: float = Field(default=120.0, gt=0)
    """Reading the merchant table to its end at start."""
