"""The enricher: transactions in, transactions with their features out, in one exactly-once hop.

``<tenant>.transactions`` (key = account) → :meth:`Enricher.handle` → ``<tenant>.transactions
.enriched``, on the shared :class:`~scorestream.processor.Processor`: one Kafka transaction per
batch holds the enriched records, the dead letters, the state changelog writes and the input
offsets. No repartition on a transaction's path (docs/adr/0004-one-hop-feature-stage.md).

Features are the spec's (:mod:`scorestream.features`), computed by the engine training uses:

* **account** windows from the account's tiles, kept in the kernel's keyed state store
  (``<tenant>.enricher.state``, partitioned like ``transactions``); a transaction re-published
  with the same id counts once;
* **merchant** aggregates from the replicated merchant table (``<tenant>.merchant-features``,
  written by the merchant stage, :mod:`consumers.merchant`), read whole by every instance and
  followed between batches; the served as-of (``merchant_as_of``) travels with the record.

Nothing is dropped silently: a foreign tenant, a key that is not the account or an event time
outside the window around now (:mod:`scorestream.event_time`: a year-1900 timestamp from a
producer that is not the gateway would become a negative Kafka timestamp downstream) goes to the
DLQ with its reason; a record on a partition its key does not hash to (a producer that does not use
the Java partitioner) is moved, in the same transaction, to the partition its key belongs to,
and enriched there with the account's state.

Layout: :mod:`~consumers.enricher.service` (the processor, ``main``) runs
:mod:`~consumers.enricher.handler` (the pure batch logic) with the account store and the
merchant table (:mod:`~consumers.enricher.merchant_table`); settings, constants and metrics in
:mod:`~consumers.enricher.settings`.
"""

from consumers.enricher.handler import AccountCodec, EnrichHandler
from consumers.enricher.merchant_table import MerchantTable
from consumers.enricher.service import Enricher, main
from consumers.enricher.settings import CLOCK_KEY, FRESHNESS, REROUTED_HEADER, EnricherSettings

__all__ = [
    "CLOCK_KEY",
    "FRESHNESS",
    "REROUTED_HEADER",
    "AccountCodec",
    "EnrichHandler",
    "Enricher",
    "EnricherSettings",
    "MerchantTable",
    "main",
]
