"""The one exception type a user can fix: it names the file, the place in it and the fix."""

from __future__ import annotations


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
