"""The store's status.json, as the job runner keeps it (states, attempts, progress, history)."""

from __future__ import annotations

import json

from .clock import utcnow
from .progress import PROGRESS_KEYS
from .runlog import log
from .storage import StorageError, Store, open_store

STATUS = "status.json"
RUNNER_KEYS = frozenset(
    {
        "state",
        "message",
        "history",
        "updatedAt",
        "sweep",
        "config",
        "mode",
        "jobDigest",
        "attempts",
        "interruptions",
        "instanceType",
        "market",
        "startedAt",
        *PROGRESS_KEYS,
    }
)
"""The keys the runner owns in status.json; every other key belongs to someone else."""
OUTCOMES = frozenset({"SUCCEEDED", "FAILED"})


class StatusBoard:
    """The store's status.json: the runner's view of the job, merged with the trainer's progress.

    The runner is not the file's only writer: the budget guard Lambda merges ``spendUsd`` (and
    ``stoppedBy``, ``marketSince``, …) into it every 5 minutes and may set state STOPPED with a
    message when the sweep's budget is spent; ``spot-sweep stop`` sets STOPPED too. So before each
    write the board re-reads the stored document, and:

    - keys in ``RUNNER_KEYS`` are the runner's: its values are written;
    - every other key is kept as stored (added, changed or removed by its owner), never dropped;
    - a STOPPED that someone else wrote since the runner last read or wrote the file stands, with its
      message, until the attempt ends: an interruption then ends STOPPED instead of PENDING (so no
      replacement instance resumes the job), and only an outcome (SUCCEEDED, FAILED) replaces it.
    """

    def __init__(self, store: Store, doc: dict):
        self.store = store
        self.doc = doc
        self.stopped_elsewhere = False
        self._seen_state = doc.get("state")  # the state as this runner last read or wrote it

    @classmethod
    def load(cls, store: Store) -> StatusBoard:
        return cls(store, _parse(store.get_bytes(STATUS), store))

    @property
    def state(self) -> str | None:
        return self.doc.get("state")

    def set(self, state: str, **fields: object) -> None:
        """Change state (appending to ``history``); a message is kept only when given with the state."""
        self._refresh()
        if self.stopped_elsewhere and state not in OUTCOMES:
            state = "STOPPED"
            fields.setdefault("message", self.doc.get("message"))
        if "message" not in fields or fields["message"] is None:
            fields.pop("message", None)
            self.doc.pop("message", None)
        self._enter(state)
        self.doc.update(fields)
        self._write()

    def progress(self, trainer_status: dict) -> None:
        """Copy the trainer's progress; nothing is written when it did not change."""
        news = {k: trainer_status[k] for k in PROGRESS_KEYS if k in trainer_status}
        if all(self.doc.get(k) == v for k, v in news.items()):
            return
        self._refresh()
        self.doc.update(news)
        self._write()

    def _enter(self, state: str) -> None:
        if state != self.doc.get("state"):
            entry = {"state": state, "at": utcnow(), "attempt": self.doc.get("attempts", 0)}
            self.doc.setdefault("history", []).append(entry)
        self.doc["state"] = state

    def _refresh(self) -> None:
        """Take the keys the runner does not own from the stored document, and a STOPPED set elsewhere."""
        try:
            stored = _parse(self.store.get_bytes(STATUS), self.store)
        except StorageError as e:
            log(f"warning: status not read back before writing it: {e}")
            return
        for key in [k for k in self.doc if k not in RUNNER_KEYS and k not in stored]:
            del self.doc[key]
        self.doc.update({k: v for k, v in stored.items() if k not in RUNNER_KEYS})
        state = stored.get("state")
        if state == "STOPPED" and self._seen_state != "STOPPED" and self.state not in OUTCOMES:
            self.stopped_elsewhere = True
            self._enter("STOPPED")
            if "message" in stored:
                self.doc["message"] = stored["message"]
            log(f"status set to STOPPED elsewhere: {stored.get('message', 'no message')}")
        self._seen_state = state

    def _write(self) -> None:
        self.doc["updatedAt"] = utcnow()
        try:
            self.store.put_bytes(STATUS, json.dumps(self.doc, indent=2).encode())
        except StorageError as e:
            log(f"warning: status not written: {e}")
            return
        self._seen_state = self.state


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
        board.set("FAILED", message=message)
    except StorageError as e:
        log(f"warning: could not record FAILED in {store_uri}: {e}")
