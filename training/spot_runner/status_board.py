"""The store's status.json, written by the job runner alone (training/contract/status.schema.json).

One writer per file: nothing else writes status.json. Requests from outside (``spot-sweep stop``, the
budget guard) arrive in control.json (``control.py``), spend in spend.json; readers merge the three.
Every write is conditional on the ETag this runner last read or wrote (S3 If-Match, or If-None-Match
for the first write), so a second writer, which the contract forbids, is noticed and logged instead of
silently overwritten.
"""

from __future__ import annotations

import json
import math

from contract import CONFIG_FILES, State, schema

from .clock import utcnow
from .progress_keys import PROGRESS_KEYS
from .runlog import log
from .storage import PreconditionFailed, StorageError, Store, open_store

STATUS = CONFIG_FILES["status"]
STATUS_VERSION = schema("status")["properties"]["version"]["const"]
KEYS = frozenset(schema("status")["properties"])
"""Every key status.json may hold; anything else (an older version's keys) is dropped on the next write."""


class StatusBoard:
    """The runner's view of the job, merged with the trainer's progress, kept in ``<store>/status.json``."""

    def __init__(self, store: Store, doc: dict, etag: str | None):
        self.store = store
        self.doc = {k: v for k, v in doc.items() if k in KEYS}
        self.etag = etag  # of the stored object this runner last read or wrote; None: there is none

    @classmethod
    def load(cls, store: Store) -> StatusBoard:
        stored = store.read(STATUS)
        if stored is None:
            return cls(store, {}, None)
        return cls(store, _parse(stored.data, store), stored.etag)

    @property
    def state(self) -> str | None:
        return self.doc.get("state")

    def set(self, state: str, **fields: object) -> None:
        """Change state (appending to ``history``); a message is kept only when given with the state."""
        if fields.get("message") is None:
            fields.pop("message", None)
            self.doc.pop("message", None)
        if state != State.STOPPED:
            for key in ("stoppedBy", "stopRequestId"):
                self.doc.pop(key, None)
        if state != self.doc.get("state"):
            entry = {"state": state, "at": utcnow(), "attempt": int(self.doc.get("attempts") or 0)}
            self.doc.setdefault("history", []).append(entry)
        self.doc["state"] = state
        self.doc.update({k: v for k, v in fields.items() if k in KEYS})
        self._write()

    def progress(self, trainer_status: dict) -> None:
        """Copy the trainer's progress (non-finite numbers as null); nothing is written if unchanged."""
        news = {k: _finite(trainer_status[k]) for k in PROGRESS_KEYS if k in trainer_status}
        if all(self.doc.get(k) == v for k, v in news.items()):
            return
        self.doc.update(news)
        self._write()

    def _write(self) -> None:
        self.doc["version"] = STATUS_VERSION
        self.doc["updatedAt"] = utcnow()
        self.doc.setdefault("history", [])
        self.doc.setdefault("attempts", 0)
        self.doc.setdefault("interruptions", 0)
        data = json.dumps(self.doc, indent=2, allow_nan=False).encode()
        try:
            try:
                self.etag = self.store.put_bytes(
                    STATUS, data, if_match=self.etag, if_absent=self.etag is None
                )
            except PreconditionFailed:
                # Only this runner may write the file (one writer per file); someone else did. Say so, and
                # write this runner's view again: it is the one that holds the job.
                log(
                    f"warning: {self.store.describe(STATUS)} was written by someone other than this runner "
                    "(only the job runner may write it: is a second runner working on this config?); "
                    "writing this runner's status over it"
                )
                stored = self.store.read(STATUS)
                self.etag = self.store.put_bytes(
                    STATUS, data, if_match=stored.etag if stored else None, if_absent=stored is None
                )
        except StorageError as e:
            log(f"warning: status not written: {e}")


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _parse(raw: bytes | None, store: Store) -> dict:
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        log(f"warning: {store.describe(STATUS)} is not valid JSON; starting a fresh status")
        return {}
    return doc if isinstance(doc, dict) else {}


def record_failure(store_uri: str | None, message: str, endpoint_url: str | None) -> None:
    """Best effort FAILED status for failures before (or outside) a normal run."""
    if not store_uri:
        return
    try:
        board = StatusBoard.load(open_store(store_uri, endpoint_url))
        board.set(State.FAILED, message=message)
    except StorageError as e:
        log(f"warning: could not record FAILED in {store_uri}: {e}")
