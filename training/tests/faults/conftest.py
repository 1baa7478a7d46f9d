"""Session fixtures of the fault suite: the dataset, the oracle (one uninterrupted run) and an interrupted
attempt's store that the checkpoint, disk and outage tests start from."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from jobkit import moto_bucket

from .faultkit import (
    RUN_TIMEOUT_S,
    SEED,
    checkpoint_names,
    checkpoints_since,
    in_parallel,
    kill_strays,
    local_store,
    make_data,
    metrics,
    outcome,
    run,
    start,
    until,
    wait_trainer_started,
)


@dataclass(frozen=True)
class Baseline:
    data: str
    """The dataset directory (local); S3 tests upload it."""
    reference: dict
    """results.json of the uninterrupted run: the oracle."""
    oracle: dict
    """``metrics(reference)``: what every faulted run must reproduce."""
    interrupted: dict
    """{key: bytes} of a store after one attempt stopped by SIGTERM mid-fold: job.json, status.json (PENDING,
    attempts 1), train.log and the two newest checkpoints with their digests."""


def _reference(root, data: str) -> dict:
    job, view = local_store(root / "reference", "reference", data)
    done = run(job, root / "reference" / "work")
    assert done.rc == 0, f"the uninterrupted reference run failed ({done.rc}):\n{done.tail()}"
    return view.json("results.json")


def _interrupted(root, data: str) -> dict:
    """SIGTERM to the runner at the trainer's second checkpoint line (~20% into the first fold): it asks the
    trainer to checkpoint, uploads and exits 75, leaving a store like a spot interruption does."""
    job, view = local_store(root / "interrupted", "interrupted", data)
    work = root / "interrupted" / "work"
    proc = start(job, work)
    try:
        started = wait_trainer_started(proc)
        assert started, f"the trainer did not start:\n{proc.tail()}"
        assert until(lambda: checkpoints_since(proc, started[1]) >= 2 or not proc.alive(), RUN_TIMEOUT_S)
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait()
    finally:
        kill_strays(work)
    files = view.files()
    assert proc.rc == 75, f"the SIGTERM'd run did not end interrupted ({proc.rc}):\n{proc.tail()}"
    assert len(checkpoint_names(files)) == 2, sorted(files)
    assert json.loads(files["status.json"])["state"] == "PENDING"
    return files


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Baseline:
    root = tmp_path_factory.mktemp("faults").resolve()
    print(f"\nfault suite: seed {SEED} (set SPOT_SWEEP_FAULT_SEED to replay another)")
    data = str(make_data(root / "data"))
    done = in_parallel(
        {"reference": lambda: _reference(root, data), "interrupted": lambda: _interrupted(root, data)}
    )
    reference = outcome(done, "reference")
    return Baseline(data, reference, metrics(reference), outcome(done, "interrupted"))


@pytest.fixture(scope="module")
def bucket():
    """A bucket in moto_server, the AWS env set for this module's test process and the runners it starts."""
    with pytest.MonkeyPatch.context() as mp:
        yield moto_bucket(mp, "faults")


@pytest.fixture(scope="module")
def s3_data(bucket, baseline) -> str:
    """The baseline dataset under datasets/faults/ in the bucket."""
    bucket.upload_dir(Path(baseline.data), "datasets/faults/")
    return bucket.uri("datasets/faults/")
