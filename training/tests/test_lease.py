"""One runner per config across machines: the lease in the store (lease.json, contract/lease.schema.json).

The work directory's flock only keeps two runners on one machine and one work directory apart; a replacement
instance while the old one still runs, or a manual run beside the fleet, each have their own. Here every
second runner has a work directory of its own, so only the lease can decide."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from jobkit import job_doc, local_job, run_job, s3, start_job, states, wait_for  # noqa: F401 - fixture

import contract
from spot_runner.exits import EXIT_BUSY
from spot_runner.lease import LEASE, TTL_ENV, Holder, Lease, LeaseHeld, lease_ttl
from spot_runner.storage import PreconditionFailed, open_store

HOST = socket.gethostname()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    return open_store(request.getfixturevalue("s3").uri("sweeps/x/c/"))


def lease_doc(store) -> dict:
    return json.loads(store.get_bytes(LEASE))


def other_holder(**fields) -> dict:
    """lease.json as another runner (elsewhere) wrote it."""
    doc = {
        "version": 1,
        "holder": {"host": "ip-10-0-0-7", "pid": 4242, "instanceId": "i-0abc"},
        "token": "0" * 32,
        "acquiredAt": "2026-12-01T10:00:00.000Z",
        "renewedAt": "2026-12-01T10:00:30.000Z",
        "ttlSeconds": 1.0,
        "released": False,
    }
    doc.update(fields)
    assert contract.problems("lease", doc) == []
    return doc


# the lease itself ---------------------------------------------------------------------------------------


def test_takes_a_free_lease_naming_its_holder(store):
    lease = Lease(store, ttl_seconds=30, holder=Holder("h1", 101, "i-0123"))

    lease.acquire("s/c")

    doc = lease_doc(store)
    assert contract.problems("lease", doc) == []
    assert doc["holder"] == {"host": "h1", "pid": 101, "instanceId": "i-0123"}
    assert doc["released"] is False and doc["ttlSeconds"] == 30
    lease.release()
    assert lease_doc(store)["released"] is True


def test_a_released_lease_is_taken_at_once(store):
    store.put_bytes(LEASE, json.dumps(other_holder(released=True, ttlSeconds=600)).encode())
    lease = Lease(store, ttl_seconds=600, holder=Holder("h1", 101, None))

    started = time.monotonic()
    lease.acquire("s/c")

    assert time.monotonic() - started < 5
    assert lease_doc(store)["holder"]["pid"] == 101 and lease_doc(store)["released"] is False


def test_an_unreleased_lease_is_taken_over_only_after_it_stayed_unchanged_for_a_full_ttl(store):
    # Its renewedAt is far in the future (the holder's clock is off): the timestamps are not trusted either
    # way; what counts is that nobody renewed it while this runner watched it for the holder's ttl.
    store.put_bytes(LEASE, json.dumps(other_holder(renewedAt="2099-01-01T00:00:00.000Z")).encode())
    lease = Lease(store, ttl_seconds=30, holder=Holder("h1", 101, None))

    started = time.monotonic()
    lease.acquire("s/c")

    assert time.monotonic() - started >= 1.0, "taken over before a full ttl of the holder's had passed"
    assert lease_doc(store)["holder"]["pid"] == 101


def test_fails_when_the_holder_renews_while_it_waits_naming_the_holder_and_the_fix(store):
    holder = Lease(store, ttl_seconds=1.5, holder=Holder("ip-10-0-0-7", 4242, "i-0abc"))
    holder.acquire("s/c")
    holder.hold(on_lost=lambda reason: None)
    before = lease_doc(store)["acquiredAt"]
    try:
        with pytest.raises(LeaseHeld) as raised:
            Lease(store, ttl_seconds=1.5, holder=Holder("h2", 202, None)).acquire("s/c")
    finally:
        holder.release()

    message = str(raised.value)
    for part in ("s/c", "ip-10-0-0-7", "pid 4242", "instance i-0abc", f"since {before}", "Fix:"):
        assert part in message, f"{part!r} missing from: {message}"
    assert lease_doc(store)["holder"]["pid"] == 4242, "the waiting runner wrote nothing"


def test_a_renewal_after_a_takeover_loses_and_names_the_new_holder(store):
    lease = Lease(store, ttl_seconds=30, holder=Holder("h1", 101, None))
    lease.acquire("s/c")
    stored = store.read(LEASE)
    store.put_bytes(LEASE, json.dumps(other_holder()).encode(), if_match=stored.etag)

    assert lease.renew() is False
    assert lease.lost is not None and "ip-10-0-0-7" in lease.lost and "pid 4242" in lease.lost
    lease.release()
    assert lease_doc(store) == other_holder(), "a lost lease is never released: it is the new holder's"


def test_the_ttl_is_three_sync_intervals_and_at_least_90_s_unless_a_test_shortens_it(monkeypatch):
    monkeypatch.delenv(TTL_ENV, raising=False)
    assert (lease_ttl(30), lease_ttl(0.2), lease_ttl(60), lease_ttl(7200)) == (90, 90, 180, 3600)
    monkeypatch.setenv(TTL_ENV, "2.5")
    assert lease_ttl(30) == 2.5


# two runners on one config ------------------------------------------------------------------------------

GATED_SCRIPT = """\
import json, os, time
here = os.path.dirname(os.path.abspath(__file__))
print("script started", flush=True)
while not os.path.exists({gate!r}):
    time.sleep(0.05)
os.makedirs(os.path.join(here, "results"), exist_ok=True)
json.dump({{"ok": True}}, open(os.path.join(here, "results", "r.json"), "w"))
"""


class Place:
    """A config's store, local or in moto's S3, seen from the test."""

    def __init__(self, kind: str, tmp_path: Path, bucket=None):
        self.kind, self.bucket = kind, bucket
        self.dir = tmp_path / "store"
        self.uri = bucket.uri("sweeps/s/c/") if bucket else self.dir.as_uri() + "/"

    def get(self, key: str) -> bytes | None:
        if self.bucket:
            return self.bucket.get("sweeps/s/c/" + key)
        path = self.dir / key
        return path.read_bytes() if path.exists() else None

    def json(self, key: str) -> dict:
        raw = self.get(key)
        return json.loads(raw) if raw else {}

    def put_job(self, doc: dict) -> str:
        if self.bucket:
            self.bucket.put("sweeps/s/c/job.json", json.dumps(doc))
            return self.bucket.uri("sweeps/s/c/job.json")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "job.json").write_text(json.dumps(doc))
        return str(self.dir / "job.json")


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path) -> Place:
    bucket = request.getfixturevalue("s3") if request.param == "s3" else None
    return Place(request.param, tmp_path, bucket)


def gated_script_job(place: Place, tmp_path: Path) -> tuple[str, Path]:
    code = tmp_path / "code"
    code.mkdir()
    gate = tmp_path / "gate"
    (code / "train.py").write_text(GATED_SCRIPT.format(gate=str(gate)))
    script = {"code": str(code), "entrypoint": "train.py", "args": [], "patches": [], "results": "results/*"}
    return place.put_job(job_doc(place.uri, None, script=script)), gate


def test_two_runners_on_one_config_only_one_trains_the_other_exits_busy_naming_the_holder(place, tmp_path):
    job, gate = gated_script_job(place, tmp_path)
    env = {TTL_ENV: "3"}
    first = start_job(job, tmp_path / "work-1", "--sync-seconds", "0.3", env=env)
    second = None
    try:
        wait_for(lambda: place.json("status.json").get("state") == "TRAINING", "the first runner", proc=first)
        wait_for(lambda: b"script started" in (place.get("train.log") or b""), "the script", proc=first)
        status_before = place.get("status.json")

        second = start_job(job, tmp_path / "work-2", "--sync-seconds", "0.3", env=env)
        out, _ = second.communicate(timeout=60)

        assert second.returncode == EXIT_BUSY, out
        assert f"{HOST}, pid {first.pid}" in out and "holds test-sweep/tiny" in out and "Fix:" in out
        assert "Traceback" not in out
        assert place.get("status.json") == status_before, "the second runner wrote nothing"
        assert not (tmp_path / "work-2" / "code").exists(), "the second runner never fetched the code"
        gate.touch()
        out, _ = first.communicate(timeout=60)
    finally:
        gate.touch()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()

    assert first.returncode == 0, out
    status = place.json("status.json")
    assert status["state"] == "SUCCEEDED" and status["attempts"] == 1
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "SUCCEEDED"]
    log = place.get("train.log").decode()
    assert log.count("=== attempt") == 1 and log.count("script started") == 1, "one attempt, one training"
    lease = place.json(LEASE)
    assert contract.problems("lease", lease) == []
    assert lease["holder"]["pid"] == first.pid and lease["released"] is True


def test_a_killed_runners_stale_lease_is_taken_over_after_the_ttl_and_the_job_resumes(tmp_path, make_dataset):
    data = make_dataset(queries=300, docs=600)
    job, store_dir = local_job(tmp_path, data, epochs=60, batchSize=16, checkpointMinutes=0.005)
    env = {TTL_ENV: "2"}
    first = start_job(job, tmp_path / "work-1", "--sync-seconds", "0.2", env=env)
    wait_for(
        lambda: any((store_dir / "checkpoints").glob("ckpt-*.pt")), "a checkpoint in the store", proc=first
    )
    child = int((tmp_path / "work-1" / "child.pid").read_text())
    os.kill(first.pid, signal.SIGKILL)  # the instance dies: nothing is released, nothing is cleaned up
    os.killpg(child, signal.SIGKILL)
    first.communicate(timeout=30)
    stale = json.loads((store_dir / LEASE).read_text())
    assert stale["holder"]["pid"] == first.pid and stale["released"] is False

    started = time.monotonic()
    done = run_job(job, tmp_path / "work-2", "--sync-seconds", "0.2", env=env)

    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started >= 2.0
    assert f"took over the lease of {HOST}, pid {first.pid}" in done.stderr
    assert "resuming: checkpoint(s) from the store" in done.stderr
    status = json.loads((store_dir / "status.json").read_text())
    assert status["state"] == "SUCCEEDED" and status["attempts"] == 2
    lease = json.loads((store_dir / LEASE).read_text())
    assert lease["holder"]["pid"] != first.pid and lease["released"] is True


def test_a_runner_releases_its_lease_when_it_ends_so_the_next_one_starts_at_once(tmp_path):
    job, store_dir = local_job(tmp_path, tmp_path / "no-data")
    env = {TTL_ENV: "600"}  # a holder that did not release would keep the next runner waiting ten minutes

    assert run_job(job, tmp_path / "work-1", env=env).returncode == 2
    assert json.loads((store_dir / LEASE).read_text())["released"] is True
    started = time.monotonic()
    again = run_job(job, tmp_path / "work-2", env=env)

    assert again.returncode == 2 and time.monotonic() - started < 60, again.stderr
    assert json.loads((store_dir / "status.json").read_text())["attempts"] == 2


def test_a_runner_that_lost_its_lease_stops_its_child_and_writes_nothing_more(tmp_path):
    place = Place("local", tmp_path)
    job, gate = gated_script_job(place, tmp_path)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2", env={TTL_ENV: "1.5"})
    try:
        wait_for(lambda: b"script started" in (place.get("train.log") or b""), "the script", proc=proc)
        # Another runner takes the lease over (as one would after this one had been silent for a ttl).
        taken = other_holder(ttlSeconds=600)
        stored = open_store(place.uri).read(LEASE)
        open_store(place.uri).put_bytes(LEASE, json.dumps(taken).encode(), if_match=stored.etag)
        status_before = place.get("status.json")
        out, _ = proc.communicate(timeout=60)
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == EXIT_BUSY, out
    assert "lost the lease to ip-10-0-0-7, pid 4242, instance i-0abc" in out
    assert place.get("status.json") == status_before, "status.json is the new holder's now"
    assert place.json(LEASE) == taken, "the new holder's lease is not released by the loser"
    assert not (place.dir / "results.json").exists()


def test_of_runners_racing_for_a_free_lease_in_a_local_store_exactly_one_wins(tmp_path):
    # S3 decides a race of conditional writes itself; a local store compares and renames under a lock.
    store = open_store(str(tmp_path / "store"))
    gate = threading.Barrier(8)
    won: list[int] = []

    def race(i: int) -> None:
        gate.wait()
        try:
            store.put_bytes(LEASE, b"%d" % i, if_absent=True)
            won.append(i)
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(won) == 1 and store.get_bytes(LEASE) == b"%d" % won[0]
