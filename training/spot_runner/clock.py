"""The one timestamp format of status.json, train.log headers and runner log lines."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> str:
    """Now, ISO 8601 in UTC to the second: 2026-11-28T14:00:00Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
