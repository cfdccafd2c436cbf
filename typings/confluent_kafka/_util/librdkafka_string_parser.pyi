__all__ = ['split', 'parse_key_values']

def split(raw: str, sep: str, skip_empty: bool) -> list[str]:
    """Split ``raw`` into fields on ``sep``, applying librdkafka's ``\\``-escaping
    and whitespace trimming. Logically equivalent to ``rd_string_split``.

    :param raw: The input string to tokenize.
    :param sep: The single field-separator character (only its first character
        is used). ``','`` for comma-separated values, etc.
    :param skip_empty: When true, empty fields (consecutive separators, or
        whitespace-only fields) are omitted from the result.
    :raises TypeError: ``raw`` is ``None``.
    """
def parse_key_values(raw: str, sep: str, context_label: str | None = None) -> list[tuple[str, str]]:
    """Split ``raw`` via :func:`split` (skipping empty fields) and parse each
    field into a ``(key, value)`` pair on its first ``=``. Logically equivalent
    to applying librdkafka's ``rd_kafka_conf_kv_split`` over every field.

    :param raw: The raw ``key=value`` string to parse.
    :param sep: The single field-separator character (e.g. ``','``).
    :param context_label: Label woven into the error message to identify which
        config a malformed entry came from. When ``None``, the message falls
        back to a generic ``key=value`` phrasing.
    :raises TypeError: ``raw`` is ``None``.
    :raises ValueError: a field has no ``=``, or has an empty key.
    """
