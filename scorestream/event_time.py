"""The window of event times a service accepts: one rule for the gateway and the consumers.

A transaction stamped in 1900 (or in 2090, or in seconds where milliseconds were meant) is
accepted by the contract — it is a valid timestamp — but it is not a real event: it would get a
negative Kafka timestamp downstream (which Java producers refuse), skew every time window and
expire out of time-based retention at once. So event times must lie within
``[now - max_event_age, now + max_event_skew]``:

* the gateway answers 422 (``event_time_out_of_window``) and publishes nothing;
* the enricher and the merchant stage, the consumers of ``<tenant>.transactions`` (records
  that did not come through the gateway: a Java producer, a replay tool), send the record to
  the DLQ with the reason ``event_time_out_of_window``.

Env: ``SCORESTREAM_MAX_EVENT_AGE`` and ``SCORESTREAM_MAX_EVENT_SKEW`` (seconds, or an ISO 8601
duration such as ``P30D`` / ``PT5M``). The default age is wide (3650 days) because replays,
backfills and the simulator publish history; a deployment that only takes live traffic should
tighten it (e.g. ``P7D``). The default skew (5 minutes) tolerates client clocks running ahead;
Kafka 4's own ``log.message.timestamp.after.max.ms`` is one hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REASON = "event_time_out_of_window"
"""The error type (HTTP) and the dead-letter reason (Kafka) for an event time outside the
window."""


class EventTimeSettings(BaseSettings):
    """Env: ``SCORESTREAM_MAX_EVENT_AGE``, ``SCORESTREAM_MAX_EVENT_SKEW``."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    max_event_age: timedelta = Field(default=timedelta(days=3650), gt=timedelta(0))
    """How far in the past an event time may lie."""
    max_event_skew: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))
    """How far in the future an event time may lie (clients' clocks run ahead)."""

    @field_validator("max_event_age", "max_event_skew", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        """An environment variable of plain seconds (``"300"``) as a number of seconds."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value  # an ISO 8601 duration: pydantic parses it
        return value


def out_of_window(when: datetime, now: datetime, settings: EventTimeSettings) -> str | None:
    """``None`` when ``when`` (aware) lies in the window around ``now`` (aware), else why not
    (the message names the bound, never more of the event than its time)."""
    if when < now - settings.max_event_age:
        return (
            f"event time {when.isoformat()} is more than {_span(settings.max_event_age)} in the "
            "past"
        )
    if when > now + settings.max_event_skew:
        return (
            f"event time {when.isoformat()} is more than {_span(settings.max_event_skew)} in the "
            "future"
        )
    return None


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} days"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return f"{seconds:g} seconds"
