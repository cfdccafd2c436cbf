from .aws_oauthbearer_config import AwsOAuthBearerConfig as AwsOAuthBearerConfig
from typing import Any

__all__ = ['AwsStsTokenProvider']

class AwsStsTokenProvider:
    """Mints OAUTHBEARER tokens via AWS STS ``GetWebIdentityToken``."""
    def __init__(self, config: AwsOAuthBearerConfig, sts_client: Any | None = None) -> None:
        """Construct a provider bound to ``config``.

        :param config: Validated :class:`AwsOAuthBearerConfig` instance.
        :param sts_client: Test seam — when supplied, the provider uses this
            client directly instead of constructing a real boto3 STS client.
            Production callers pass ``None``.
        :raises TypeError: ``config`` is ``None``.
        :raises ImportError: the installed boto3 is older than
            :data:`MINIMUM_BOTO3_VERSION` (checked only on the real-client
            path, i.e. when ``sts_client`` is ``None``).
        """
    def token(self, oauthbearer_config: str = '') -> tuple[str, float, str, dict[str, str]]:
        """Mint a fresh JWT and return the ``oauth_cb`` 4-tuple.

        :param oauthbearer_config: The verbatim ``sasl.oauthbearer.config``
            string librdkafka passes back on every refresh. Accepted for
            interface completeness but unused — the AWS path's fields are
            sourced from the bound :class:`AwsOAuthBearerConfig` at
            construction time, not re-parsed per refresh.

        :returns: 4-tuple ``(token, expiry_epoch_seconds, principal,
            extensions)`` matching the C ``oauth_cb`` contract.

        :raises botocore.exceptions.ClientError: STS-side error
            (``AccessDenied``, ``OutboundWebIdentityFederationDisabled``,
            ...). The C ``oauth_cb`` wrapper converts raised exceptions
            into ``rd_kafka_oauthbearer_set_token_failure``.
        :raises ValueError: STS returned a malformed JWT or missing
            ``Expiration``.
        """
