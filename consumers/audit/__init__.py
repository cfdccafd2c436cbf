"""The audit service: transaction + prediction + decision joined into one record, exactly once.

Inputs ``<tenant>.transactions.enriched`` (the transaction with its features as served),
``<tenant>.predictions`` and ``<tenant>.decisions``, all keyed by ``account_id`` with the same
partition count, so every part of a transaction arrives on the same partition number of each
topic. The consumer uses the ``range`` assignor, which gives one member the same partition
numbers of all three topics, and the join state of partition *p* is local to that member.

The join itself is :mod:`consumers.audit.join` (pure). This module adds the Kafka side:

* one :class:`AuditRecord` per transaction on ``<tenant>.audit`` (kept forever), keyed by
  ``account_id`` and with the **transaction's timestamp as the Kafka record timestamp** (capped
  at now), so ``offsets_for_times`` / ``kafka-get-offsets --time`` find audit records by when
  the payment happened;
* every change of the join state is written to the compacted changelog ``<tenant>.audit.state``
  (key = transaction id, partition = the input partition, a tombstone once a finished join is
  forgotten) **in the same Kafka transaction** as the audit records and the input offsets;
* when partitions are assigned, their state is rebuilt by reading the changelog partitions to
  their end (``read_committed``) before any input record of them is processed. A SIGKILL at any
  point therefore loses nothing and duplicates nothing: the state, the outputs and the offsets
  move together or not at all;
* pending joins whose earliest part is older than ``SCORESTREAM_AUDIT_JOIN_TIMEOUT_S`` become
  ``incomplete`` records listing what is ``missing``. The timeout is in event time (``ce_time``)
  against a per-partition watermark: the smallest, over the three inputs, of the latest
  ``ce_time`` read from it, an input with nothing left to read counting as the wall clock (see
  :mod:`consumers.audit.join`). Checked after every batch and between batches (a transaction
  of its own when something is due), so timeouts fire when traffic stops too;
* a part arriving after its transaction was recorded incomplete writes the next *revision* of
  the record (``revision``, ``supersedes``, ``amends``) within
  ``SCORESTREAM_AUDIT_AMEND_WINDOW_S``; later than that it goes to its input's DLQ with reason
  ``late_for_audit`` and a pointer to the record — never a second, contradicting record;
* an identical copy of a part is ignored (counted); a different part under a transaction id the
  audit already has goes to its input's DLQ with reason ``transaction_id_reused``.

See docs/audit.md (revisions, the amend window, reading the latest revision with the Kafka CLI).

``python -m consumers.audit replay ...`` (``scorestream audit replay``) is
:mod:`consumers.audit.replay`.

Layout: :mod:`~consumers.audit.service` (the processor, ``main``) over the pure join
(:mod:`~consumers.audit.join`, :mod:`~consumers.audit.join_table`); the re-scoring tool is
:mod:`~consumers.audit.replay`.
"""

from consumers.audit.service import Audit, AuditSettings, main

__all__ = ["Audit", "AuditSettings", "main"]
