"""Times are UTC everywhere: one way to make a datetime so, and one way to print it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(t: datetime) -> datetime:
    """``t`` in UTC; a naive time is taken to be UTC already."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso_utc(t: datetime, timespec: str = "auto") -> str:
    """ISO 8601 with a ``Z``: ``2025-11-22T02:46:18Z``."""
    return utc(t).isoformat(timespec=timespec).replace("+00:00", "Z")
