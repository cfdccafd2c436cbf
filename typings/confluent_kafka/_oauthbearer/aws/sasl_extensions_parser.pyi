__all__ = ['CONFIG_KEY', 'parse']

CONFIG_KEY: str

def parse(raw: str | None) -> dict[str, str] | None:
    """Parse the verbatim ``sasl.oauthbearer.extensions`` value into a dict.

    The grammar mirrors the cross-language convention for consistency.

    Returns ``None`` for ``None`` / empty input so the autowire layer can
    short-circuit without constructing an empty dict.

    :raises ValueError: A token is missing ``=`` or has an empty key.
    """
