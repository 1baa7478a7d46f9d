"""The job runner's log lines and the one error type of its modules."""

from __future__ import annotations

import sys

from .clock import utcnow
from .exits import EXIT_BAD_INPUT


class JobError(Exception):
    """A failure the user can fix, with the exit code it maps to."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.message = message
        self.code = code


def line(message: str) -> str:
    """A runner line, stamped: ``[job 2026-11-28T14:00:00Z] message``."""
    return f"[job {utcnow()}] {message}"


def log(message: str) -> None:
    """A runner line on stderr (the trainer's own lines are teed beside it)."""
    print(line(message), file=sys.stderr, flush=True)
