"""The one exception hierarchy of scorestream.

Every error raised on purpose by scorestream code derives from :class:`ScorestreamError`, so
callers can catch the root, a family (``ConfigError``, ``BrokerError``, ``KafkaClientError``,
``DecodeError``) or one precise class. Modelled on httpx: small classes, a message that says
what to do, and the context needed to act on the failure kept as attributes.

This module imports nothing from the rest of the project so every package can depend on it.
"""

from __future__ import annotations


class ScorestreamError(Exception):
    """Root of every scorestream error."""


class ConfigError(ScorestreamError):
    """Settings or inputs are invalid; the message names what to change."""


class SettingsError(ConfigError):
    """Settings read from the environment or flags are invalid. The message names the settings
    and what is wrong with them, never their values (a secret must not reach a log or a crash
    message)."""


class BrokerError(ScorestreamError):
    """The local development broker cannot be prepared, started or stopped."""


class ToolMissingError(BrokerError):
    """A required external program (java, mvn) is not installed."""


class PortUnavailableError(BrokerError):
    """A requested listener port cannot be bound."""


class BrokerStartError(BrokerError):
    """The broker process exited or did not become ready in time."""


class KafkaClientError(ScorestreamError):
    """A Kafka operation (admin, produce, consume) failed."""


class TopicError(KafkaClientError):
    """Creating, altering or describing topics failed."""


class MissingTopicError(TopicError):
    """A topic a service needs does not exist. Services never create topics (their principals
    have no Create ACL): the deploy step provisions every topic with the registry's configs."""

    def __init__(self, topics: str | list[str], tenant: str | None = None) -> None:
        names = [topics] if isinstance(topics, str) else sorted(topics)
        self.topics = names
        who = tenant or (names[0].split(".", 1)[0] if names and "." in names[0] else "<tenant>")
        super().__init__(
            f"topic(s) missing: {', '.join(names)}. Services do not create topics: provision "
            f"them as an admin with `scorestream topics create --tenant {who}` (Kubernetes: "
            "apply the tenant's KafkaTopic manifests, `scorestream k8s generate`)"
        )


class DeliveryError(KafkaClientError):
    """A produced record was not acknowledged by the broker."""


class ModelError(ScorestreamError):
    """A model artifact cannot be stored, loaded or served."""


class ModelNotFoundError(ModelError):
    """No such model name, version or alias."""


class VersionExistsError(ModelError):
    """Model versions are immutable: this one is already in the repository."""


class ModelIntegrityError(ModelError):
    """The artifact's sha256 differs from its metadata (corrupt or tampered)."""


class ModelFormatError(ModelError):
    """``model.json`` is missing or invalid, or the ONNX graph does not load or match it."""


class FeatureSpecMismatchError(ModelError):
    """The model was trained on another feature spec than the running code computes."""
