__all__ = ['extract_sub']

def extract_sub(jwt: str) -> str:
    """Return the ``sub`` claim from the JWT payload.

    :raises ValueError: ``jwt`` is null, empty, oversized, has the wrong
        segment count, fails base64url decoding, isn't valid JSON, isn't a
        JSON object, or has no ``sub`` string claim (or its value is empty).
    """
