"""API keys per tenant for the gateway: authentication, tenant authorization, per-key rate limit.

Keys look like ``ssk_<key id>_<secret>``. The gateway stores only ``<key id> <tenant>
sha256:<salt hex>:<digest hex>`` lines (the digest is SHA-256 over salt + key); the key itself is
shown once, by ``scorestream gateway-keys add``. A fast salted hash is enough here because the
keys are 256-bit random values, not passwords: there is nothing to brute-force, and a
per-request scrypt would cost more CPU than scoring. Comparison is constant time; an unknown key
id still costs one hash, so timing does not tell which ids exist.

The lines come from ``SCORESTREAM_GATEWAY_API_KEYS_FILE`` (a Kubernetes Secret mounted as a file)
and/or ``SCORESTREAM_GATEWAY_API_KEYS`` (the same lines in one variable). ``#`` starts a comment.

Protected: everything under ``/v1/`` and ``/v2/models/`` (submit, score, V2 infer and model
metadata). Open: ``/livez``, ``/readyz``, ``/metrics``, ``/v2``, ``/v2/health/*``, ``/docs``.

* no key → 401 (with ``WWW-Authenticate``); unknown or wrong key → 401;
* a valid key of another tenant → 403: a key submits only for its own tenant;
* more than ``rate_limit_per_s`` (burst ``rate_limit_burst``) per key → 429 + ``Retry-After``;
* more than ``max_in_flight_per_key`` requests of one key in progress at once (e.g. bodies sent
  slowly or never) → 429 + ``Retry-After`` for that key only: one client cannot take the
  gateway's whole in-flight budget (``max_in_flight``) and lock every other client out.

Responses and logs name at most the key id, never the key; ``auth_mode=disabled`` (development
only) turns all of it off and says so in the log at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from producers.gateway.http import REJECTED, ASGIApp, Receive, Scope, Send, send_error
from scorestream.errors import ConfigError

log = logging.getLogger("scorestream.gateway.auth")

KEY_PREFIX = "ssk"
KEY_HEADER = "X-API-Key"
_DUMMY_SALT = bytes(16)


class GatewayAuthSettings(BaseSettings):
    """Env: ``SCORESTREAM_GATEWAY_AUTH_MODE``, ``..._API_KEYS_FILE``, ``..._API_KEYS``,
    ``..._RATE_LIMIT_PER_S``, ``..._RATE_LIMIT_BURST``, ``..._MAX_IN_FLIGHT_PER_KEY``."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_GATEWAY_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    auth_mode: Literal["api_key", "disabled"] = "api_key"
    """``disabled`` is for local development only (logged as a warning)."""
    api_keys_file: Path | None = None
    """File of stored key lines (``<key id> <tenant> sha256:<salt>:<digest>``, as ``scorestream
    gateway-keys add`` makes them), e.g. a mounted Secret; read at start."""
    api_keys: SecretStr | None = None
    """The same lines in one variable (a secret), added to the file's."""
    rate_limit_per_s: float = Field(default=200.0, gt=0)
    """Requests per second one API key may make on each replica (a token bucket); beyond it 429
    with ``Retry-After``."""
    rate_limit_burst: int = Field(default=400, ge=1)
    """The token bucket's size: how many requests one key may send in a quick burst after an
    idle spell."""
    max_in_flight_per_key: int = Field(default=64, ge=1)
    """Requests of one API key in progress at once (reading the body included); keep it well
    under the gateway's ``max_in_flight`` (512 by default)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant: str
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)


def _digest(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode()).digest()


def _key_id(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def new_key(tenant: str) -> tuple[str, str]:
    """A fresh key and the line to store for it: ``(key, "<id> <tenant> sha256:<salt>:<hex>")``."""
    from scorestream.topics import validate_tenant  # noqa: PLC0415

    validate_tenant(tenant)
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    return key, f"{key_id} {tenant} sha256:{salt.hex()}:{_digest(salt, key).hex()}"


def parse_keys(text: str, *, origin: str) -> dict[str, ApiKey]:
    """The stored lines as records by key id; ConfigError names the line, never its content."""
    keys: dict[str, ApiKey] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key_id, tenant, hashed = line.split()
            scheme, salt_hex, digest_hex = hashed.split(":")
            if scheme != "sha256":
                raise ValueError(scheme)
            record = ApiKey(key_id, tenant, bytes.fromhex(salt_hex), bytes.fromhex(digest_hex))
        except ValueError:
            raise ConfigError(
                f"{origin} line {n}: expected '<key id> <tenant> sha256:<salt hex>:<digest hex>'"
            ) from None
        if len(record.digest) != hashlib.sha256().digest_size or key_id in keys:
            raise ConfigError(f"{origin} line {n}: bad digest length or duplicate key id")
        keys[key_id] = record
    return keys


class KeyStore:
    """The known keys; :meth:`verify` returns the record of a presented key or None."""

    def __init__(self, keys: Mapping[str, ApiKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_settings(cls, settings: GatewayAuthSettings) -> KeyStore:
        keys: dict[str, ApiKey] = {}
        if settings.api_keys_file is not None:
            try:
                text = settings.api_keys_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read the API keys file: {exc.strerror}") from None
            keys |= parse_keys(text, origin=str(settings.api_keys_file))
        if settings.api_keys is not None:
            keys |= parse_keys(
                settings.api_keys.get_secret_value(), origin="SCORESTREAM_GATEWAY_API_KEYS"
            )
        return cls(keys)

    def tenants(self) -> set[str]:
        return {k.tenant for k in self._keys.values()}

    def verify(self, presented: str) -> ApiKey | None:
        key_id = _key_id(presented)
        record = self._keys.get(key_id) if key_id else None
        salt = record.salt if record else _DUMMY_SALT
        expected = record.digest if record else bytes(32)
        ok = hmac.compare_digest(_digest(salt, presented), expected)
        return record if ok and record is not None else None


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; one request takes one token."""

    rate: float
    burst: int
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> float:
        """0 if admitted, else the seconds until a token is available."""
        if self.tokens < 0:
            self.tokens, self.stamp = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def protected(path: str) -> bool:
    return path.startswith(("/v1/", "/v2/models/"))


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class ApiKeyMiddleware:
    """Plain ASGI, outside the body limit and inside the metrics middleware (so 401/403/429
    are counted by route and in ``scorestream_gateway_rejected_total``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tenant: str,
        store: KeyStore,
        rate_per_s: float,
        burst: int,
        max_in_flight: int = 64,
        retry_after_s: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.tenant = tenant
        self.store = store
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}  # bounded: one per configured key
        self.in_flight: dict[str, int] = {}  # bounded: one per configured key, gone at 0

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        reason: str,
        detail: str,
        headers: dict[str, str],
    ) -> None:
        """401/403/429 in the shape of the path's API (``{"error": ...}`` under ``/v2``)."""
        REJECTED.labels(reason).inc()
        await send_error(send, scope, status, detail, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        challenge = {"WWW-Authenticate": 'Bearer realm="scorestream"'}
        key = presented_key(scope.get("headers", []))
        if key is None:
            await self._refuse(
                scope,
                send,
                401,
                "unauthenticated",
                "missing API key (Authorization: Bearer)",
                challenge,
            )
            return
        record = self.store.verify(key)
        if record is None:
            log.warning("invalid API key presented for %s", scope["path"])
            await self._refuse(scope, send, 401, "unauthenticated", "invalid API key", challenge)
            return
        if record.tenant != self.tenant:
            log.warning("API key %s of another tenant refused", record.key_id)
            await self._refuse(
                scope,
                send,
                403,
                "forbidden",
                f"API key {record.key_id} may not submit for tenant {self.tenant}",
                {},
            )
            return
        bucket = self.buckets.setdefault(record.key_id, TokenBucket(self.rate_per_s, self.burst))
        wait = bucket.take(self.clock())
        if wait > 0:
            await self._refuse(
                scope,
                send,
                429,
                "rate_limited",
                f"rate limit of API key {record.key_id} exceeded",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
            return
        busy = self.in_flight.get(record.key_id, 0)
        if busy >= self.max_in_flight:
            await self._refuse(
                scope,
                send,
                429,
                "key_overload",
                f"API key {record.key_id} already has {busy} requests in progress (limit "
                f"{self.max_in_flight}); retry later",
                {"Retry-After": str(self.retry_after_s)},
            )
            return
        scope.setdefault("state", {})["api_key_id"] = record.key_id
        self.in_flight[record.key_id] = busy + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.in_flight[record.key_id] - 1
            if left:
                self.in_flight[record.key_id] = left
            else:
                del self.in_flight[record.key_id]


def auth_store(tenant: str, settings: GatewayAuthSettings) -> KeyStore | None:
    """The keys for :class:`ApiKeyMiddleware`, or None when auth is disabled. Fails closed: auth
    on and no key for ``tenant`` is a ConfigError at start-up, not an open gateway."""
    if settings.auth_mode == "disabled":
        log.warning(
            "API key authentication is DISABLED (SCORESTREAM_GATEWAY_AUTH_MODE=disabled): "
            "development only, never in production"
        )
        return None
    store = KeyStore.from_settings(settings)
    if tenant not in store.tenants():
        raise ConfigError(
            f"no API key for tenant {tenant}: set SCORESTREAM_GATEWAY_API_KEYS_FILE (see "
            "`scorestream gateway-keys add`) or SCORESTREAM_GATEWAY_AUTH_MODE=disabled for dev"
        )
    log.info("API key authentication on for tenant %s", tenant)
    return store


def dev_key(directory: Path, tenant: str) -> tuple[str, Path]:
    """A development key for ``tenant`` kept in ``directory`` (``scorestream up``/the demo):
    ``api-key`` (the key, mode 0600) and ``gateway-keys`` (its stored line). Reused if present."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file, keys_file = directory / "api-key", directory / "gateway-keys"
    if key_file.exists() and keys_file.exists():
        key = key_file.read_text(encoding="utf-8").strip()
        if KeyStore.from_settings(GatewayAuthSettings(api_keys_file=keys_file)).verify(key):
            return key, keys_file
    key, line = new_key(tenant)
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_text(key + "\n", encoding="utf-8")
    keys_file.write_text(f"# development key of tenant {tenant}\n{line}\n", encoding="utf-8")
    return key, keys_file


def add_key(tenant: str, keys_file: Path | None = None) -> tuple[str, str]:
    """``scorestream gateway-keys add``: a new key and its stored line, appended to
    ``keys_file`` if given (the file a Secret is then made from)."""
    key, line = new_key(tenant)
    if keys_file is not None:
        with keys_file.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    return key, line
