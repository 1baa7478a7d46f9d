"""S3 outages, staged by a proxy in front of moto_server (s3proxy.py) that the runner talks to.

- Before the job starts (refused connections, connections reset mid-answer): a clear failure (non-zero
  exit, a message naming the store, no traceback), the store byte-identical; once S3 is back, a rerun
  resumes to the uninterrupted run's results.
- In the middle of training, for longer than a sync (refused, black-holed, reset): the runner keeps
  training and catches up once S3 is back (the store then mirrors the end of the run), or ends interrupted
  with nothing lost; either way the results equal the uninterrupted run's.

Why no retry settings in the env: spot_runner/storage.py gives boto3 an explicit Config (3 attempts,
standard mode, 5 s connect and 60 s read timeouts), which wins over AWS_MAX_ATTEMPTS / AWS_RETRY_MODE. A
refused or reset request therefore fails after ~3-6 s of backoff; a black-holed one would wait out the
60 s read timeout, so the proxy resets stalled connections when the black hole ends (see s3proxy.py) and
no test black-holes S3 before the start (it would cost 3 minutes per run).
"""

from __future__ import annotations

import time

import pytest

from .faultkit import (
    MODULE_TIMEOUT,
    RUN_TIMEOUT_S,
    TRAIN,
    S3View,
    checkpoints_since,
    has_traceback,
    in_parallel,
    kill_strays,
    local_store,
    metrics,
    outcome,
    run,
    s3_store,
    seed_store,
    start,
    until,
    wait_trainer_started,
)
from .s3proxy import FaultProxy

pytestmark = pytest.mark.timeout(MODULE_TIMEOUT)

OUTAGE_S = 1.0
"""Five syncs (--sync-seconds 0.2) without S3 while the trainer trains."""

TRAIN_LONG = {**TRAIN, "epochs": 4}
"""Twice the training (~2.4 s), so that the outage always ends while the trainer still trains: one that
outlasted the training would test the runner's last writes instead, at random (boto3's backoff is random)."""

STILL_TRAINING = "fold 2/2 epoch 3/4"
"""The trainer's line at 5/8 of its training: the outage ends there at the latest (a fast machine)."""


def proxy_for(bucket) -> FaultProxy:
    host, port = bucket.endpoint.removeprefix("http://").rsplit(":", 1)
    return FaultProxy((host, int(port)))


def through(proxy: FaultProxy) -> dict:
    """The runner's env: every S3 call through the proxy."""
    return {"AWS_ENDPOINT_URL": proxy.url}


def before_start(root, bucket, s3_data, baseline, mode: str, rerun: bool) -> dict:
    """The store holds an interrupted attempt; S3 is out (``mode``) when the next attempt starts."""
    job, view = s3_store(bucket, f"outage-start-{mode}", s3_data)
    before = seed_store(view, baseline.interrupted)
    proxy = proxy_for(bucket)
    try:
        proxy.set_mode(mode)
        failed = run(job, root / "work-1", "--endpoint-url", proxy.url, env=through(proxy))
        after = view.files()
        proxy.set_mode("pass")
        # One rerun is enough to show the store still resumes: a store left byte-identical by the other
        # mode resumes the same way (each rerun costs a trainer start).
        again = run(job, root / "work-2", "--endpoint-url", proxy.url, env=through(proxy)) if rerun else None
    finally:
        proxy.close()
        kill_strays(root / "work-1", root / "work-2")
    return {
        "failed": failed,
        "before": before,
        "after": after,
        "again": again,
        "view": view,
        "seen": proxy.seen,
    }


def mid_training(root, bucket, s3_data, mode: str) -> dict:
    """S3 goes out (``mode``) at the trainer's first checkpoint line, for OUTAGE_S (or until the trainer
    reaches STILL_TRAINING), then comes back."""
    job, view = s3_store(bucket, f"outage-mid-{mode}", s3_data, train=TRAIN_LONG)
    proxy = proxy_for(bucket)
    work = root / "work"
    notes = {}
    try:
        proc = start(job, work, "--endpoint-url", proxy.url, env=through(proxy))
        started = wait_trainer_started(proc, RUN_TIMEOUT_S)
        if started and until(lambda: checkpoints_since(proc, started[1]) or not proc.alive(), RUN_TIMEOUT_S):
            proxy.set_mode(mode)
            out_at = time.monotonic()
            log = work / "train.log"
            until(lambda: not proc.alive() or STILL_TRAINING in log.read_text(), OUTAGE_S)
            notes["outage seconds"] = round(time.monotonic() - out_at, 2)
            notes["trainer still training when S3 came back"] = proc.trainer_pid() is not None
            proxy.set_mode("pass")
        proc.wait()
        local = {p.name: p.read_bytes() for p in (work / "out" / "checkpoints").glob("ckpt-*")}
        local_log = (work / "train.log").read_text() if (work / "train.log").exists() else ""
        again = None
        if proc.rc == 75:  # interrupted with nothing lost: a replacement, with S3 back, must finish it
            again = run(job, root / "work-2")
    finally:
        proxy.close()
        kill_strays(work, root / "work-2")
    return {
        "run": proc,
        "again": again,
        "view": view,
        "local": local,
        "local_log": local_log,
        "notes": notes,
        "seen": proxy.seen,
    }


def long_reference(root, data: str) -> dict:
    """The oracle of the TRAIN_LONG runs: the same data, uninterrupted."""
    job, view = local_store(root, "reference-long", data, train=TRAIN_LONG)
    done = run(job, root / "work")
    assert done.rc == 0, f"the uninterrupted reference run failed ({done}):\n{done.tail()}"
    return metrics(view.json("results.json"))


START_MODES = ("refuse", "reset")
MID_MODES = ("refuse", "blackhole", "reset")


@pytest.fixture(scope="module")
def outages(bucket, s3_data, baseline, tmp_path_factory):
    root = tmp_path_factory.mktemp("s3-outage").resolve()
    scenarios = {"reference-long": lambda: long_reference(root / "reference-long", baseline.data)}
    for m in MID_MODES:
        scenarios[f"mid-{m}"] = lambda m=m: mid_training(root / f"mid-{m}", bucket, s3_data, m)
    for m in START_MODES:
        scenarios[f"start-{m}"] = lambda m=m: before_start(
            root / f"start-{m}", bucket, s3_data, baseline, m, rerun=m == "refuse"
        )
    return in_parallel(scenarios)


@pytest.mark.parametrize("mode", START_MODES)
def test_fails_clearly_and_changes_nothing_when_s3_is_out_before_the_start(outages, baseline, mode):
    case = outcome(outages, f"start-{mode}")
    failed, view = case["failed"], case["view"]
    print(f"with S3 out: {failed}; rerun: {case['again']}; connections by mode: {dict(case['seen'])}")
    assert not failed.hung, f"the runner hung with S3 out ({mode}):\n{failed.tail()}"
    assert failed.rc not in (0, None), failed.tail()
    assert view.uri in failed.output, f"the message does not name the store {view.uri}:\n{failed.tail()}"
    assert not has_traceback(failed.output), failed.tail(40)
    assert case["after"] == case["before"], "the store changed while S3 was out"
    again = case["again"]
    if again is not None:
        assert again.rc == 0, f"the rerun after S3 came back failed ({again.rc}):\n{again.tail()}"
        assert metrics(view.json("results.json")) == baseline.oracle


def assert_caught_up(view: S3View, local: dict[str, bytes], local_log: str) -> None:
    """After a run that went through an outage and succeeded, the store mirrors its end: the checkpoints
    the trainer kept, and the whole train.log."""
    stored = {k.split("/")[-1]: v for k, v in view.files().items() if k.startswith("checkpoints/")}
    assert stored == local, f"store checkpoints {sorted(stored)} != the run's last ones {sorted(local)}"
    assert view.log() == local_log, "the store's train.log is not the run's whole log"


@pytest.mark.parametrize("mode", MID_MODES)
def test_keeps_training_through_an_s3_outage_and_ends_with_identical_results(outages, mode):
    case = outcome(outages, f"mid-{mode}")
    oracle = outcome(outages, "reference-long")
    proc, view = case["run"], case["view"]
    print(f"{proc}; rerun: {case['again']}; {case['notes']}; connections by mode: {dict(case['seen'])}")
    notes = case["notes"]
    assert notes.get("trainer still training when S3 came back"), (
        f"no outage in the middle of training: {notes}"
    )
    assert notes["outage seconds"] >= 0.4, f"the outage lasted less than two syncs: {notes}"
    if mode != "refuse":  # a refused connection never reaches the proxy's accept, so it is not counted
        assert case["seen"][mode] >= 1, "the runner made no S3 request during the outage"
    assert not proc.hung, f"the runner hung after the outage ({mode}):\n{proc.tail()}"
    status = view.json("status.json")
    if proc.rc == 0:
        assert status["state"] == "SUCCEEDED", status
        assert_caught_up(view, case["local"], case["local_log"])
    else:
        assert proc.rc == 75, f"neither caught up nor interrupted: exit {proc.rc}\n{proc.tail(40)}"
        assert case["again"].rc == 0, case["again"].tail()
    assert not has_traceback(proc.output), proc.tail(40)
    assert metrics(view.json("results.json")) == oracle
