"""``scorestream dlq list|show|redrive``: inspect a tenant's dead letters and re-drive them.

An operator tool (a layer above the kernel): it reads the ``<tenant>.<stream>.dlq`` topics of the
topic registry with ``read_committed`` and the dead-letter headers of :mod:`scorestream.dlq`.

* ``list`` counts dead letters by DLQ topic and ``dlq.reason`` (counts only: memory does not grow
  with the topic), from the beginning or from ``--since`` (``offsets_for_times``).
* ``show`` prints records' headers and payloads through the log redaction of
  :mod:`scorestream.logs` (secret-looking headers, ``key=value`` secrets, URLs' secret parts,
  card numbers). A pointer dead letter is shown as a pointer, with the command that reads the
  original.
* ``redrive`` re-publishes selected dead letters to the topic they came from (``dlq.source.topic``,
  which must be the DLQ's own stream of the same tenant) with their original key, value and
  headers minus the ``dlq.*`` ones, plus ``dlq.redrive.count`` (one more than the record's own).
  A record already re-driven ``max_redrives`` times is refused. Exactly once: the produce and
  the DLQ positions it moved past are committed in one Kafka transaction
  (``transactional.id = <tenant>.dlq-redrive``), per reason in the consumer group
  ``<tenant>.dlq-redrive.<reason>``, so a second run (or a run for another reason) never moves a
  record twice, and a run that fails moves nothing of its unfinished batch.

Layout: :mod:`~scorestream.ops.dlq.selection` (which tenant, topics, reasons, since),
:mod:`~scorestream.ops.dlq.views` (one dead letter and its headers),
:mod:`~scorestream.ops.dlq.reading` (the ``read_committed`` reads),
:mod:`~scorestream.ops.dlq.inspection` (``list`` and ``show``),
:mod:`~scorestream.ops.dlq.redrive_plan` (what a re-drive publishes, or refuses) and
:mod:`~scorestream.ops.dlq.redrive_run` (the exactly-once transactions), over
:mod:`~scorestream.ops.dlq.clients` (the tool's Kafka clients and the broker's refusals).
"""

from __future__ import annotations

from scorestream.ops.dlq.clients import CLIENT_ID, AccessDeniedError
from scorestream.ops.dlq.inspection import (
    MAX_REASONS,
    Count,
    Listing,
    list_dead_letters,
    read_original_command,
    render,
    select,
)
from scorestream.ops.dlq.reading import (
    PROGRESS_EVERY_S,
    STALL_TIMEOUT_S,
    Progress,
    existing_topics,
    ranges,
    read,
    stderr_progress,
)
from scorestream.ops.dlq.redrive_plan import (
    MAX_REFUSED_LISTED,
    REDIRECTS,
    Planned,
    RedriveReport,
    Refusal,
    operator_acl_rules,
    plan,
    redrive_group,
    transactional_id,
)
from scorestream.ops.dlq.redrive_run import BATCH_BYTES, DlqSettings, redrive
from scorestream.ops.dlq.selection import (
    NothingMatchedError,
    Selection,
    describe,
    dlq_streams,
    parse_since,
    resolve_topics,
)
from scorestream.ops.dlq.views import DeadLetterView, Headers, last_header, redrive_count

__all__ = [
    "BATCH_BYTES",
    "CLIENT_ID",
    "MAX_REASONS",
    "MAX_REFUSED_LISTED",
    "PROGRESS_EVERY_S",
    "REDIRECTS",
    "STALL_TIMEOUT_S",
    "AccessDeniedError",
    "Count",
    "DeadLetterView",
    "DlqSettings",
    "Headers",
    "Listing",
    "NothingMatchedError",
    "Planned",
    "Progress",
    "RedriveReport",
    "Refusal",
    "Selection",
    "describe",
    "dlq_streams",
    "existing_topics",
    "last_header",
    "list_dead_letters",
    "operator_acl_rules",
    "parse_since",
    "plan",
    "ranges",
    "read",
    "read_original_command",
    "redrive",
    "redrive_count",
    "redrive_group",
    "render",
    "resolve_topics",
    "select",
    "stderr_progress",
    "transactional_id",
]
