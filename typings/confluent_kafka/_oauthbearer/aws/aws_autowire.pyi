from typing import Callable

__all__ = ['OAuthBearerCallback', 'create_handler']

OAuthBearerCallback = Callable[[str], tuple[str, float, str, dict[str, str]]]

def create_handler(sasl_oauthbearer_config: str, sasl_oauthbearer_extensions: str | None) -> OAuthBearerCallback:
    """Build an OAUTHBEARER refresh callback from the two OAUTHBEARER config strings.

    :param sasl_oauthbearer_config: The verbatim ``sasl.oauthbearer.config``
        value (whitespace-separated ``key=value`` pairs). Must be non-empty.
    :param sasl_oauthbearer_extensions: The verbatim
        ``sasl.oauthbearer.extensions`` value (comma-separated ``key=value``
        pairs, RFC 7628 §3.1). May be ``None`` or empty when the user has
        no extensions configured.

    :returns: A callable matching :data:`OAuthBearerCallback`.

    :raises ValueError: ``sasl_oauthbearer_config`` is ``None`` or empty;
        the wire-grammar parse fails (unknown key, malformed token, missing
        required field, range/enum violation, etc.).
    :raises ImportError: the installed boto3 predates the minimum required by
        the AWS IAM path (boto3 is present but too old for STS
        ``GetWebIdentityToken``).
    :raises RuntimeError: AWS SDK reachability or initialisation failure
        (e.g. unknown region, malformed ``sts_endpoint``).
    """
