"""The gateway: HTTP in, Kafka out — asynchronous intake, synchronous scoring, KServe V2.

* ``POST /v1/transactions`` → 202 once the event is durably in Kafka (acks=all).
* ``POST /v1/transactions:score`` → publishes with ``replyto=<tenant>.replies/<P>`` and a random
  ``requestid`` extension, waits for the decision that carries this request id on reply
  partition ``P`` (:mod:`producers.gateway.replies`; never matched by ``transaction_id``) and
  returns it; on the deadline (``Prefer: wait=<s>``, default 2 s) 504 with the event id — the
  event still completes asynchronously, and a retry of the same request waits for it again. The
  deadline bounds the wait for Kafka's acknowledgement too: 504 ``unacknowledged``.
* One publish per request, on every replica and across restarts
  (:mod:`producers.gateway.idempotency`, the compacted ``<tenant>.gateway.idempotency`` topic):
  the ``transaction_id`` and the ``Idempotency-Key`` are claimed in Kafka before publishing. The
  same request again replays the first answer (``Idempotent-Replayed: true``); the same
  transaction id with another body (or on the other endpoint) → 409 ``transaction_id_reused``;
  the same key with another body → 422; a request whose outcome is still open (being published,
  or Kafka's answer was a timeout and the gateway is looking the event up in the topic) → 409 +
  ``Retry-After``. The event id is derived from the request (tenant + key or transaction id +
  body), so a copy carries the same ``ce_id``.
* ``/v2/...``: the Open Inference Protocol (:mod:`producers.gateway.v2`,
  :mod:`producers.gateway.inference`), routed through Kafka; every route also under
  ``/v2/models/<m>/versions/<v>``; every error body under ``/v2`` is the protocol's
  ``{"error": "..."}`` (the middlewares' and the handlers' alike, via
  :func:`producers.gateway.http.error_body`); ``/v2/health/ready`` and the model readiness are
  true only while a model serves the tenant (``/readyz`` does not wait for one: ``/v1`` intake
  works without a model).
* ``/docs``, ``/livez``, ``/readyz``, ``/metrics``; body limit → 413; invalid → 422 with the
  fields; more than ``max_in_flight`` requests → 503 + ``Retry-After``, more than
  ``max_in_flight_per_key`` of one API key → 429 for that key; an unknown method → 501, a body
  that is not JSON → 415, headers or body not received in time → 408 (docs/gateway-limits.md).

The gateway never calls another service: it publishes through :class:`producers.publisher.Publisher`
and reads its reply partition.

Layout: :mod:`~producers.gateway.app` (HTTP routes, ``main``) over
:mod:`~producers.gateway.service` (the data plane) over the idempotency log
(:mod:`~producers.gateway.idempotency`) and the reply partition
(:mod:`~producers.gateway.replies`); :mod:`~producers.gateway.http`,
:mod:`~producers.gateway.server` and :mod:`~producers.gateway.auth` are the HTTP edge.
"""

from producers.gateway.app import create_app, main, redacted_errors
from producers.gateway.bodies import RequestInvalid, parse_transaction
from producers.gateway.service import Gateway
from producers.gateway.settings import GatewaySettings

__all__ = [
    "Gateway",
    "GatewaySettings",
    "RequestInvalid",
    "create_app",
    "main",
    "parse_transaction",
    "redacted_errors",
]
