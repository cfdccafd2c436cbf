from _typeshed import Incomplete
from dataclasses import dataclass as dataclass

__all__ = ['CONFIG_KEY', 'DEFAULT_SIGNING_ALGORITHM', 'ALLOWED_SIGNING_ALGORITHMS', 'MIN_DURATION_SECONDS', 'MAX_DURATION_SECONDS', 'DEFAULT_DURATION_SECONDS', 'TAG_KEY_PREFIX', 'MAX_TAGS', 'AWS_DEBUG_NONE', 'AWS_DEBUG_CONSOLE', 'ALLOWED_AWS_DEBUG_VALUES', 'AwsOAuthBearerConfig']

CONFIG_KEY: str
DEFAULT_SIGNING_ALGORITHM: str
ALLOWED_SIGNING_ALGORITHMS: Incomplete
MIN_DURATION_SECONDS: int
MAX_DURATION_SECONDS: int
DEFAULT_DURATION_SECONDS: int
TAG_KEY_PREFIX: str
MAX_TAGS: int
AWS_DEBUG_NONE: str
AWS_DEBUG_CONSOLE: str
ALLOWED_AWS_DEBUG_VALUES: Incomplete

@dataclass(frozen=True)
class AwsOAuthBearerConfig:
    """Immutable view of the AWS path's ``sasl.oauthbearer.config``."""
    region: str
    audience: str
    signing_algorithm: str = ...
    duration_seconds: int = ...
    sts_endpoint: str | None = ...
    aws_debug: str = ...
    tags: dict[str, str] | None = ...
    sasl_extensions: dict[str, str] | None = ...
    def __post_init__(self) -> None:
        """Final-state validation. Raises :class:`ValueError` on bad input."""
    @classmethod
    def parse(cls, raw: str, sasl_extensions: dict[str, str] | None = None) -> AwsOAuthBearerConfig:
        """Parse the verbatim ``sasl.oauthbearer.config`` value.

        Comma-separated ``key=value`` tokens; the union of recognised
        keys plus ``tag_<NAME>`` entries. Anything else raises
        :class:`ValueError`. Empty values for required-non-empty keys raise
        the same. Duplicate keys → last-wins.

        :param raw: The verbatim ``sasl.oauthbearer.config`` string.
        :param sasl_extensions: Pre-parsed dict from the sibling
            ``sasl.oauthbearer.extensions`` property (see
            :mod:`.sasl_extensions_parser`). Stored on the config
            unchanged.
        :raises TypeError: ``raw`` is ``None``.
        :raises ValueError: grammar, range, or enum violations.
        """
