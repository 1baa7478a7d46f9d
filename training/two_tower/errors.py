"""The one exception type a user can fix: it names the file, the place in it and the fix."""

from __future__ import annotations

import numpy as np

from spot_runner.quote import QUOTE_LIMIT
from spot_runner.quote import quote as _quote


class UserError(Exception):
    """Bad input or usage: the trainer prints the message (no traceback) and exits with code 2."""

    def __init__(
        self, problem: str, *, file: str | None = None, where: str | None = None, fix: str | None = None
    ):
        self.problem = problem
        self.file = file
        self.where = where
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        place = ", ".join(p for p in (self.file, self.where) if p)
        text = f"{place}: {self.problem}" if place else self.problem
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut after ``limit`` characters of the value with ``…(N more characters)``: every value
    taken from the user's files goes through here, so a 20 MB id still gives a one-line message."""
    if isinstance(value, np.generic):  # a cell of a Parquet column: show 1.5, not np.float64(1.5)
        value = value.item()
    return _quote(value, limit)
