"""The store's status.json, written by the job runner alone (training/contract/status.schema.json).

One writer per file: nothing else writes status.json. Requests from outside (``spot-sweep stop``, the
budget guard) arrive in control.json (``control.py``), spend in spend.json; readers merge the three.
Every write is conditional on the ETag this runner last read or wrote (S3 If-Match, or If-None-Match
for the first write), so a second writer, which the contract forbids, is noticed and logged instead of
silently overwritten.

A status.json the runner cannot use (not JSON, not an object, a field it decides on of the wrong kind) is
never dropped: ``keep_unreadable`` copies its bytes to ``history/`` before anything is written over it, and
the runner rebuilds it from results.json when that is this job's (``job.Runner.recover_status``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from contract import CONFIG_FILES, STATES, State, schema

from .clock import utcnow
from .progress_keys import PROGRESS_KEYS
from .quote import quote
from .runlog import log
from .storage import PreconditionFailed, StorageError, Store, open_store

STATUS = CONFIG_FILES["status"]
STATUS_VERSION = schema("status")["properties"]["version"]["const"]
KEYS = frozenset(schema("status")["properties"])
"""Every key status.json may hold; anything else (an older version's keys) is dropped on the next write."""
DIGEST = re.compile(schema("status")["properties"]["jobDigest"]["pattern"])
HISTORY = CONFIG_FILES["history"]


@dataclass(frozen=True)
class Unreadable:
    """A stored status.json the runner cannot use: why, and its bytes (kept, never lost)."""

    problem: str
    data: bytes


class StatusBoard:
    """The runner's view of the job, merged with the trainer's progress, kept in ``<store>/status.json``."""

    def __init__(self, store: Store, doc: dict, etag: str | None):
        self.store = store
        self.doc = {k: v for k, v in doc.items() if k in KEYS}
        self.etag = etag  # of the stored object this runner last read or wrote; None: there is none
        self.unreadable: Unreadable | None = None

    @classmethod
    def load(cls, store: Store) -> StatusBoard:
        """The stored status; one the runner cannot use loads as a fresh one, with ``unreadable`` set."""
        stored = store.read(STATUS)
        if stored is None:
            return cls(store, {}, None)
        doc, problem = _parse(stored.data)
        board = cls(store, doc, stored.etag)
        if problem is not None:
            board.unreadable = Unreadable(problem, stored.data)
        return board

    def keep_unreadable(self) -> str:
        """Copy the unreadable status.json into history/ before anything is written over it; returns the key.
        The time and a digest of the bytes in the name: two damaged versions never share a key."""
        assert self.unreadable is not None
        tag = hashlib.sha256(self.unreadable.data).hexdigest()[:8]
        key = f"{HISTORY}{STATUS}.unreadable-{utcnow()}-{tag}"
        self.store.put_bytes(key, self.unreadable.data)
        return key

    def rebuild_from(self, results: dict) -> None:
        """SUCCEEDED, as this job's results.json tells it: its attempts, interruptions and where it ran."""
        job = results["job"]
        self.doc = {k: v for k, v in self.doc.items() if k in ("sweep", "config")}
        self.doc.update(
            {k: job[k] for k in ("attempts", "interruptions", "instanceType", "market", "jobDigest")}
        )
        self.doc.update(mode=results["mode"], history=[])
        if "examplesPerSecond" in results:
            self.doc["examplesPerSecond"] = results["examplesPerSecond"]
        self.set(State.SUCCEEDED, progress=1.0, etaSeconds=0)

    @property
    def state(self) -> str | None:
        return self.doc.get("state")

    def note_failed_attempt(self, cause: str, exit_code: int) -> None:
        """A FAILED entry in ``history`` for the current attempt, with its cause and exit code, without making
        the job FAILED: the job goes on (a retry, or a stop that came first), so no reader ever sees a final
        state that is not. Written with the next ``set``."""
        entry = {"state": State.FAILED, "at": utcnow(), "attempt": int(self.doc.get("attempts") or 0)}
        self.doc.setdefault("history", []).append({**entry, "cause": cause, "exitCode": exit_code})

    def set(self, state: str, entry: dict | None = None, **fields: object) -> None:
        """Change state (appending to ``history``, with ``entry``'s ``cause`` and ``exitCode`` when given); a
        message is kept only when given with the state."""
        if fields.get("message") is None:
            fields.pop("message", None)
            self.doc.pop("message", None)
        if state != State.STOPPED:
            for key in ("stoppedBy", "stopRequestId"):
                self.doc.pop(key, None)
        changed = state != self.doc.get("state")
        self.doc["state"] = state
        self.doc.update({k: v for k, v in fields.items() if k in KEYS})
        if changed:  # after the update: the entry names the attempt this state belongs to
            record = {"state": state, "at": utcnow(), "attempt": int(self.doc.get("attempts") or 0)}
            self.doc.setdefault("history", []).append({**record, **(entry or {})})
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


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


FIELDS = {
    "state": lambda v: v in STATES,
    "attempts": _count,
    "interruptions": _count,
    "history": lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v),
    "jobDigest": lambda v: isinstance(v, str) and DIGEST.fullmatch(v) is not None,
}
"""The fields the runner decides on (state required, the rest when present) and the values it can use; a
status.json with any other is unreadable. The rest it only copies or overwrites."""


def _parse(raw: bytes) -> tuple[dict, str | None]:
    """The stored status, or {} and why the runner cannot use it."""
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        return {}, "it is not UTF-8 text"
    except json.JSONDecodeError as e:
        return {}, f"it is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
    if not isinstance(doc, dict):
        return {}, f"it holds a JSON {type(doc).__name__}, not an object"
    wrong = [
        key for key, usable in FIELDS.items() if (key in doc or key == "state") and not usable(doc.get(key))
    ]
    if wrong:
        return {}, "its " + ", ".join(f"`{key}` ({quote(doc.get(key))})" for key in wrong) + " cannot be used"
    return doc, None


def record_failure(
    store_uri: str | None,
    message: str,
    endpoint_url: str | None,
    state: str = State.FAILED,
    stopped_by: str | None = None,
    identity: dict[str, str] | None = None,
) -> None:
    """Best effort FAILED (or, with ``stopped_by``, STOPPED) status for endings before (or outside) a normal
    run."""
    if not store_uri:
        return
    try:
        board = StatusBoard.load(open_store(store_uri, endpoint_url))
        if board.unreadable is not None:
            kept = board.store.describe(board.keep_unreadable())
            why = board.unreadable.problem
            log(f"warning: {board.store.describe(STATUS)} was unreadable ({why}); its bytes are in {kept}")
        # sweep and config from job.json, which status.schema.json requires of every status (a status.json
        # that does not exist yet gets them from here).
        board.set(
            state, message=message, **(identity or {}), **({"stoppedBy": stopped_by} if stopped_by else {})
        )
    except StorageError as e:
        log(f"warning: could not record {state} in {store_uri}: {e}")
