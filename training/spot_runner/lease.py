"""lease.json: one job runner per config across machines (training/contract/lease.schema.json).

The work directory's flock (``Runner.hold_workdir``) keeps two runners on one machine apart; it cannot see a
replacement instance while the old one still runs, or a manual run beside the fleet. The lease in the store
can: the runner takes it before it reads or writes status.json, keeps it while it runs, and releases it at
every ending, so a runner that cannot have it changes nothing.

- A free lease (no lease.json) is taken with If-None-Match: *, a released one with If-Match its ETag.
- An unreleased lease belongs to a live holder or to a dead one (kill -9, an instance gone without notice).
  The clocks of two machines may disagree by more than a ttl, so renewedAt is never trusted to tell them
  apart: the runner watches the lease for the holder's ttlSeconds. A renewal (or release) meanwhile proves
  the holder alive: the runner names it and exits 73, writing nothing. A lease unchanged (same ETag, same
  bytes) for the whole ttl is stale: taken over with If-Match the ETag seen, so that of two runners taking
  it over only one wins.
- The holder renews it three times per ttl from a thread of its own (``hold``), not from the supervisor's
  tick: a big data copy or checkpoint upload before or between ticks can outlast a ttl, and a runner doing
  that is alive. Each renewal is If-Match the ETag of its own last write; one that loses means someone took
  the lease over. The runner then stops its child with the reason "lost the lease to <holder>" and writes
  nothing more to the store (no checkpoint, log, status or results: they are the new holder's now, and the
  loser's checkpoint mirror would delete the new holder's checkpoints), and exits 73 (``LeaseLost``). It
  confirms the lease once more when the child has ended, before the writes that end the job.
- Release (released: true, If-Match) at every ending, so the next runner starts at once; a lost lease is
  never released (it is the new holder's).

S3 conditional writes: If-None-Match: * fails with 412 when the key exists, If-Match with 412 when the ETag
differs, and two conditional writes to one key at once end in one 409 (storage.PreconditionFailed for all).
@see https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from contract import CONFIG_FILES, problems, schema

from .imds import Imds
from .runlog import JobError, log
from .storage import PreconditionFailed, StorageError, Store

LEASE = CONFIG_FILES["lease"]
LEASE_VERSION = 1
TTL_ENV = "SPOT_SWEEP_LEASE_TTL_SECONDS"
MIN_TTL_SECONDS = 90.0
"""A renewal every 30 s at least: three S3 PUTs a ttl cost nothing, and 90 s is what a replacement after a
kill -9 waits before it resumes."""
MAX_TTL_SECONDS = float(schema("lease")["properties"]["ttlSeconds"]["maximum"])
RENEWALS_PER_TTL = 3
"""Two renewals in a row may fail (a slow or briefly unreachable store) before the lease goes stale."""


def lease_ttl(sync_seconds: float) -> float:
    """Three sync intervals, at least MIN_TTL_SECONDS and at most MAX_TTL_SECONDS (what the schema allows: a
    lease outside it would read as unreadable, and be watched for the reader's own ttl instead); env
    SPOT_SWEEP_LEASE_TTL_SECONDS sets it instead (tests shorten it: a stale lease is then taken over in
    seconds)."""
    raw = os.environ.get(TTL_ENV)
    if not raw:
        return min(max(RENEWALS_PER_TTL * sync_seconds, MIN_TTL_SECONDS), MAX_TTL_SECONDS)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_TTL_SECONDS:
        raise JobError(
            f"{TTL_ENV}={raw!r} must be a number of seconds above 0, at most {MAX_TTL_SECONDS:g}. "
            "Fix: correct or unset it."
        )
    return value


def _now() -> str:
    """Milliseconds: two renewals within one second still differ (and so does their ETag)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: host, pid and EC2 instance id (None off EC2)."""

    host: str
    pid: int
    instance_id: str | None

    @classmethod
    def this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), Imds().get("instance-id"))

    @classmethod
    def from_doc(cls, doc: dict) -> Holder:
        h = doc["holder"]
        return cls(h["host"], h["pid"], h["instanceId"])

    def describe(self) -> str:
        where = f"instance {self.instance_id}" if self.instance_id else "not on EC2"
        return f"{self.host}, pid {self.pid}, {where}"


class LeaseBusy(Exception):
    """Another runner holds the config: this one exits 73 (EXIT_BUSY)."""


class LeaseHeld(LeaseBusy):
    """A live holder was found when taking the lease: nothing was written."""


class LeaseLost(LeaseBusy):
    """Another runner took the lease over while this one ran: its child was stopped, nothing more written."""


class Lease:
    """This runner's hold on ``<store>/lease.json``."""

    def __init__(
        self,
        store: Store,
        ttl_seconds: float,
        holder: Holder | None = None,
    ):
        self.store = store
        self.ttl = ttl_seconds
        self.holder = holder or Holder.this_process()
        self.token = uuid.uuid4().hex
        self.acquired_at: str | None = None
        self.etag: str | None = None  # of this runner's last write; None: it holds nothing
        self.lost: str | None = None  # the new holder, described, once another runner took the lease over
        self._lock = threading.Lock()  # the renewing thread and release/confirm write in turn
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: str | None = None

    # taking it -------------------------------------------------------------------------------------------

    def acquire(self, what: str) -> None:
        """Take the lease of ``what`` (sweep/config, for messages), waiting up to the holder's ttl to tell a
        dead holder from a live one; LeaseHeld names a live one."""
        while True:
            stored = self.store.read(LEASE)
            if stored is None:
                if self._write(if_absent=True):
                    return
                continue  # another runner created it just now: look at it
            doc = _parse(stored.data)
            if doc is not None and doc["released"]:
                if self._write(if_match=stored.etag):
                    log(f"lease: took the released lease of {Holder.from_doc(doc).describe()}")
                    return
                continue
            ttl = doc["ttlSeconds"] if doc is not None else self.ttl
            who = Holder.from_doc(doc).describe() if doc is not None else "an unreadable lease.json"
            log(
                f"lease: {self.store.describe(LEASE)} is held by {who}; waiting up to {ttl:g} s for it to be "
                "renewed (a live holder) or released"
            )
            changed = self._watch(stored.data, stored.etag, ttl)
            if changed is None:  # unchanged for a whole ttl: its holder is gone
                if self._write(if_match=stored.etag):
                    log(f"lease: took over the lease of {who}: not renewed for {ttl:g} s")
                    return
                continue
            now = _parse(changed)
            if changed == b"" or (now is not None and now["released"]):
                continue  # removed or released meanwhile: take it
            holder = (
                f"{Holder.from_doc(now).describe()}, since {now['acquiredAt']} (it renewed "
                f"{self.store.describe(LEASE)} at {now['renewedAt']})"
                if now is not None
                else f"someone who keeps rewriting {self.store.describe(LEASE)}, which is not a lease"
            )
            raise LeaseHeld(
                f"another job runner holds {what}: {holder}: this one changes nothing and exits. Fix: wait "
                "for it to end (or stop it with spot-sweep stop), then run again."
            )

    def _watch(self, data: bytes, etag: str, ttl: float) -> bytes | None:
        """Poll the lease for ``ttl`` seconds: its new content once it changed (b"" when removed), or None
        when it stayed as it was. The machine's monotonic clock measures the wait, never the holder's."""
        end = time.monotonic() + ttl
        pause = min(max(ttl / 20, 0.05), 5.0)
        while time.monotonic() < end:
            time.sleep(min(pause, max(end - time.monotonic(), 0)))
            now = self.store.read(LEASE)
            if now is None:
                return b""
            if now.etag != etag or now.data != data:
                return now.data
        return None

    def _doc(self, released: bool = False) -> bytes:
        now = _now()
        holder = self.holder
        doc = {
            "version": LEASE_VERSION,
            "holder": {"host": holder.host, "pid": holder.pid, "instanceId": holder.instance_id},
            "token": self.token,
            "acquiredAt": self.acquired_at or now,
            "renewedAt": now,
            "ttlSeconds": self.ttl,
            "released": released,
        }
        return json.dumps(doc, indent=2).encode()

    def _write(self, *, if_absent: bool = False, if_match: str | None = None) -> bool:
        """Take the lease with one conditional write; False when another writer won."""
        self.acquired_at = None
        data = self._doc()
        try:
            self.etag = self.store.put_bytes(LEASE, data, if_absent=if_absent, if_match=if_match)
        except PreconditionFailed:
            return False
        self.acquired_at = json.loads(data)["acquiredAt"]
        return True

    # keeping it ------------------------------------------------------------------------------------------

    def hold(self, on_lost: Callable[[str], object]) -> None:
        """Renew the lease from a thread, three times per ttl, until ``release``; when a renewal loses,
        ``on_lost("lost the lease to <holder>")`` is called once, from that thread."""

        def renew_until_halted() -> None:
            while not self._halt.wait(self.ttl / RENEWALS_PER_TTL):
                if not self.renew():
                    on_lost(f"lost the lease to {self.lost}")
                    return

        self._thread = threading.Thread(target=renew_until_halted, name="lease", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Renew now; False once the lease was lost. A store that cannot be reached is logged and counts as
        still held: if it stays unreachable for a ttl, another runner may take over, and the next renewal
        that gets through finds that out."""
        with self._lock:
            if self.lost is not None:
                return False
            if self.etag is None:
                return True
            try:
                self.etag = self.store.put_bytes(LEASE, self._doc(), if_match=self.etag)
                self._warned = None
                return True
            except PreconditionFailed:
                return self._check_holder()
            except StorageError as e:
                if self._warned != str(e):  # once per distinct error, not at every renewal
                    self._warned = str(e)
                    log(f"warning: lease not renewed ({e}); next try in {self.ttl / RENEWALS_PER_TTL:g} s")
                return True

    def _check_holder(self) -> bool:
        """After a lost renewal: still ours (a 409 from a takeover that failed) or whose it is now."""
        try:
            stored = self.store.read(LEASE)
        except StorageError:
            return True  # cannot tell yet: the next renewal asks again
        doc = _parse(stored.data) if stored is not None else None
        if doc is not None and doc["token"] == self.token:
            self.etag = stored.etag
            return True
        if stored is None:
            self.lost = f"nobody: {self.store.describe(LEASE)} was removed"
        else:
            self.lost = Holder.from_doc(doc).describe() if doc is not None else "an unreadable lease.json"
        log(f"lease: lost the lease to {self.lost}")
        return False

    def confirm(self) -> None:
        """Renew now and raise LeaseLost when the lease is no longer this runner's: called before the writes
        that end a job, so that a runner which was frozen for longer than a ttl does not write them."""
        if not self.renew():
            raise LeaseLost(
                f"lost the lease to {self.lost}: this runner stopped its child and wrote nothing more to "
                f"{self.store.describe()}; the new holder goes on"
            )

    # giving it back --------------------------------------------------------------------------------------

    def release(self) -> None:
        """Mark the lease released (If-Match), so that the next runner takes it at once; nothing when it was
        lost or never taken. A failure is logged: the lease then goes stale and is taken over after a ttl."""
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        with self._lock:
            if self.etag is None or self.lost is not None:
                return
            try:
                self.store.put_bytes(LEASE, self._doc(released=True), if_match=self.etag)
            except PreconditionFailed:
                log("lease: not released: another runner took it over meanwhile")
            except StorageError as e:
                log(f"warning: lease not released ({e}); the next runner takes it over after {self.ttl:g} s")
            self.etag = None


def _parse(data: bytes) -> dict | None:
    """The lease document, or None when it is not one (then it counts as held, by someone unknown)."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if not problems("lease", doc) else None
