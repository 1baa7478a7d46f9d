"""A user's value echoed in a message, cut to a readable length: the one helper of the runner and the
trainer (``two_tower.errors.quote`` adds NumPy scalars). It lives here because the runner may not import
the trainer (see ``spot_runner/__init__.py``), while the trainer already imports from the runner.
"""

from __future__ import annotations

QUOTE_LIMIT = 80
"""Characters of a user's value echoed in a message: enough to recognise it, short enough to stay one line."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut after ``limit`` characters with ``…(N more characters)``: a key, path or text
    from the user's files still gives a one-line message when it is megabytes long."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        unit = "bytes" if isinstance(value, bytes) else "characters"
        return f"{value[:limit]!r}…({len(value) - limit:,} more {unit})"
    return cut(repr(value), limit)


def cut(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` (already quoted, e.g. as JSON) cut after ``limit`` characters the same way."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text) - limit:,} more characters)"
