"""control.json: the requests the job runner obeys (training/contract/control.schema.json).

Requesters (``spot-sweep stop``, ``spot-sweep start``, ``spot-sweep local``, the budget guard) write the
config's latest request there; the runner only reads it: before the job starts, and at every sync tick
while it runs.
A stop makes the runner ask the child to checkpoint (SIGTERM), upload, and end STOPPED with the
request's reason and requester; a start (or no file) lets the job run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contract import CONFIG_FILES, Action, problems

from .runlog import log
from .storage import StorageError, Store

CONTROL = CONFIG_FILES["control"]


@dataclass(frozen=True)
class StopRequest:
    """A stop someone asked for: who (a names.json requester), why, when, and the request's id."""

    by: str
    reason: str
    at: str
    id: str

    def describe(self) -> str:
        return f"a stop requested by {self.by} at {self.at}: {self.reason}"


class Control:
    """Reads ``<store>/control.json``; a malformed file is logged once and counts as no request."""

    def __init__(self, store: Store):
        self.store = store
        self._warned: str | None = None

    def stop_request(self) -> StopRequest | None:
        """The pending stop, or None (no file, a start request, or the file cannot be read now)."""
        try:
            stored = self.store.read(CONTROL)
        except StorageError as e:
            # Once per distinct error, not at every tick: the job goes on, and so does the next read.
            self._warn(f"not read ({e}); no stop request is seen while this lasts")
            return None
        if stored is None:
            return None
        try:
            doc = json.loads(stored.data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self._warn(f"it is not valid JSON ({e})")
            return None
        found = problems("control", doc)
        if found:
            self._warn("; ".join(found))
            return None
        if doc["action"] != Action.STOP:
            return None
        return StopRequest(by=doc["by"], reason=doc["reason"], at=doc["at"], id=doc["id"])

    def _warn(self, why: str) -> None:
        if self._warned != why:
            self._warned = why
            log(f"warning: ignoring {self.store.describe(CONTROL)}: {why}")
