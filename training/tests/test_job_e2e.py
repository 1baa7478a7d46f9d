"""End to end: job.json in a real S3 API server (moto_server) → the job runner → the real trainer
(``python -m two_tower.train`` on a ``two_tower.synth`` dataset) → status, results, log and checkpoints
in the bucket; a trainer killed mid-fold resumes to the same results; a spot notice interrupts cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_relevance_negative
from jobkit import (
    TRAINING,
    FakeImds,
    S3Bucket,
    job_doc,
    moto_bucket,
    run_job,
    start_job,
    start_job_until,
    states,
    wait_for,
)

TIMING_KEYS = {"seconds", "totalSeconds", "examplesPerSecond"}
TRAIN = {"epochs": 4, "batchSize": 16, "checkpointMinutes": 0.005}  # a mid-epoch checkpoint every 0.3 s


class World:
    def __init__(self, bucket: S3Bucket, root: Path):
        self.bucket = bucket
        self.root = root

    def put_job(self, config: str, data: str | None = None, **train) -> str:
        doc = job_doc(
            self.bucket.uri(f"sweeps/e2e/{config}/"),
            data or self.bucket.uri("datasets/synth/"),
            sweep="e2e",
            config=config,
        )
        doc["train"].update(TRAIN, **train)
        self.bucket.put(f"sweeps/e2e/{config}/job.json", json.dumps(doc))
        return self.bucket.uri(f"sweeps/e2e/{config}/job.json")

    def status(self, config: str) -> dict:
        return self.bucket.get_json(f"sweeps/e2e/{config}/status.json") or {}

    def log(self, config: str) -> str:
        return (self.bucket.get(f"sweeps/e2e/{config}/train.log") or b"").decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        bucket = moto_bucket(mp, "e2e")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "two_tower.synth",
                "--out",
                str(root / "data"),
                "--queries",
                "600",
                "--docs",
                "1200",
                "--dim",
                "32",
                "--seed",
                "3",
            ],
            cwd=TRAINING,
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        bucket.upload_dir(root / "data", "datasets/synth/")
        yield World(bucket, root)


@pytest.fixture(scope="module")
def baseline(world):
    """One uninterrupted run: its results are what an interrupted run must reproduce."""
    done = run_job(world.put_job("baseline"), world.root / "baseline-work", "--sync-seconds", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def without_timing(results: dict) -> dict:
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    # model.key names the config (sweeps/e2e/<config>/model/); the same weights have the same sha256.
    model = results.get("model") and {"sha256": results["model"]["sha256"]}
    return strip({**{k: v for k, v in results.items() if k != "job"}, "model": model})


def test_runs_a_job_from_job_json_to_results_in_the_bucket(world, baseline):
    status = world.status("baseline")
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "SUCCEEDED"]
    assert status["attempts"] == 1 and status["interruptions"] == 0 and status["progress"] == 1.0
    assert status["examplesPerSecond"] > 0 and "message" not in status
    results = world.bucket.get_json("sweeps/e2e/baseline/results.json")
    assert len(results["folds"]) == 2 and 0.5 < results["ndcg10"]["mean"] <= 1.0
    # When the job ended (History lists moved results by it), as the runner's clock read it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", results["job"]["finishedAt"])
    # setup: test_setup_times
    assert {k: v for k, v in results["job"].items() if k not in ("setup", "finishedAt")} == {
        "sweep": "e2e",
        "config": "baseline",
        "instanceType": "local",
        "market": "local",
        "attempts": 1,
        "interruptions": 0,
        "jobDigest": status["jobDigest"],
    }
    assert world.bucket.get_json("sweeps/e2e/baseline/folds.json")
    # The final model, in the bucket beside results.json, which names it.
    assert sorted(world.bucket.keys("sweeps/e2e/baseline/model/")) == [
        "sweeps/e2e/baseline/model/model.json",
        "sweeps/e2e/baseline/model/model.safetensors",
    ]
    manifest = world.bucket.get_json("sweeps/e2e/baseline/model/model.json")
    assert results["model"] == {"key": "sweeps/e2e/baseline/model/", "sha256": manifest["weights"]["sha256"]}
    assert "nDCG@10" in world.log("baseline")
    checkpoints = world.bucket.keys("sweeps/e2e/baseline/checkpoints/")
    kept = [k for k in checkpoints if k.endswith(".pt")]
    assert 1 <= len(kept) <= 2 and sorted(checkpoints) == sorted([*kept, *(k + ".sha256" for k in kept)])
    assert (world.root / "baseline-work" / "data" / "pairs.csv").is_file()

    again = run_job(world.put_job("baseline"), world.root / "replacement-work")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert world.status("baseline")["attempts"] == 1


def test_resumes_from_the_uploaded_checkpoint_after_the_trainer_is_killed_mid_fold(world, baseline):
    job = world.put_job("killed")
    work = world.root / "killed-work"
    # Kill at the second checkpoint of the first fold (the runner uploads it, at a tick or after the kill):
    # TRAIN["epochs"] leaves at least two more epochs of that fold to be interrupted.
    proc = start_job_until(
        job,
        work,
        "checkpoint: ckpt-00000002.pt (0 of 2 folds done; fold 1/2:",
        "the second checkpoint of fold 1",
        "--sync-seconds",
        "0.2",
    )
    pid = int((work / "child.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 1, out
    failed = world.status("killed")
    assert failed["state"] == "FAILED" and "killed by signal 9" in failed["message"]
    assert not world.bucket.get("sweeps/e2e/killed/results.json")
    previous, newest = sorted((work / "out" / "checkpoints").glob("ckpt-*.pt"))[-2:]
    last = torch.load(newest, map_location="cpu", weights_only=False)
    before = torch.load(previous, map_location="cpu", weights_only=False)

    resumed = run_job(job, world.root / "replacement-work-killed", "--sync-seconds", "0.5")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = re.search(r"resume: from fold (\d+) epoch (\d+) step (\d+)", resumed.stderr)
    assert match, "the replacement did not resume from a checkpoint"
    assert match[1] == "1" and (match[2], match[3]) != ("1", "0"), f"not resumed mid-fold: {match[0]}"
    assert (int(match[1]), int(match[2]), int(match[3])) == (
        last["fold"] + 1,
        last["epoch"] + 1,
        last["step"],
    )
    status = world.status("killed")
    assert status["state"] == "SUCCEEDED" and status["attempts"] == 2
    assert states(status) == [
        "PENDING",
        "BOOTSTRAPPING",
        "TRAINING",
        "FAILED",
        "BOOTSTRAPPING",
        "TRAINING",
        "SUCCEEDED",
    ]
    results = world.bucket.get_json("sweeps/e2e/killed/results.json")
    expected = world.bucket.get_json("sweeps/e2e/baseline/results.json")
    assert without_timing(results) == without_timing(expected)
    assert results["job"]["attempts"] == 2
    log = world.log("killed")
    assert (
        "=== attempt 1 on local" in log
        and "=== attempt 2 on local" in log
        and "killed by signal 9" not in log
    )

    # Work repeated: the steps the killed attempt ran after its newest checkpoint (which the replacement
    # resumed from), estimated from the kill time and the attempt's own pace between its last two checkpoints;
    # never more than the steps up to the next checkpoint, which it did not reach.
    per_epoch = -(-expected["folds"][0]["trainExamples"] // (TRAIN["epochs"] * TRAIN["batchSize"]))

    def position(state):
        return state["epoch"] * per_epoch + state["step"]

    pace = (position(last) - position(before)) / max(newest.stat().st_mtime - previous.stat().st_mtime, 1e-6)
    lost_seconds = max(killed_at - newest.stat().st_mtime, 0.0)
    redone = min(pace * lost_seconds, per_epoch)
    print(
        f"\nresume loss after SIGKILL: resumed at fold {match[1]} epoch {match[2]} step {match[3]}; "
        f"{lost_seconds:.2f} s after that checkpoint, ~{redone:.0f} steps redone "
        f"({per_epoch} steps per epoch; checkpoints every epoch and every "
        f"{TRAIN['checkpointMinutes'] * 60:.1f} s)"
    )


def test_sigterm_checkpoints_at_once_and_the_replacement_repeats_no_work(world, baseline):
    job = world.put_job("sigterm")
    work = world.root / "sigterm-work"
    proc = start_job_until(
        job,
        work,
        "checkpoint: ckpt-00000001.pt (0 of 2 folds done; fold 1/2:",
        "the first checkpoint of fold 1",
        "--sync-seconds",
        "0.2",
    )

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)

    assert proc.returncode == 75, out
    status = world.status("sigterm")
    assert status["state"] == "PENDING" and status["interruptions"] == 1
    assert "interrupted by SIGTERM" in status["message"]
    saved = re.findall(
        r"checkpoint: (ckpt-\d+\.pt) \((\d+) of \d+ folds done; fold (\d+)/\d+: (\d+) epochs \+ (\d+) steps",
        out,
    )[-1]
    assert f"sweeps/e2e/sigterm/checkpoints/{saved[0]}" in world.bucket.keys(
        "sweeps/e2e/sigterm/checkpoints/"
    )

    resumed = run_job(job, world.root / "replacement-work-sigterm", "--sync-seconds", "0.5")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = re.search(r"resume: from fold (\d+) epoch (\d+) step (\d+)", resumed.stderr)
    assert match and (int(match[1]), int(match[2]), int(match[3])) == (
        int(saved[2]),
        int(saved[3]) + 1,
        int(saved[4]),
    ), "the replacement must start exactly where the interrupted attempt stopped"
    results = world.bucket.get_json("sweeps/e2e/sigterm/results.json")
    assert without_timing(results) == without_timing(
        world.bucket.get_json("sweeps/e2e/baseline/results.json")
    )
    assert results["job"]["attempts"] == 2 and results["job"]["interruptions"] == 1
    print(
        f"\nresume loss after SIGTERM: stopped and resumed at {match[0].removeprefix('resume: from ')}; "
        "0 steps redone"
    )


def test_spot_notice_checkpoints_uploads_and_exits_as_interrupted(world):
    imds = FakeImds(instance_type="g5.xlarge", life_cycle="spot")
    try:
        job = world.put_job("spot", epochs=20)
        proc = start_job(
            job,
            world.root / "spot-work",
            "--sync-seconds",
            "0.5",
            env={"SPOT_SWEEP_IMDS_ENDPOINT": imds.url, "SPOT_SWEEP_SPOT_POLL_SECONDS": "0.2"},
        )
        wait_for(lambda: "checkpoint:" in world.log("spot"), "training to start", timeout=90, proc=proc)
        imds.notice()
        out, _ = proc.communicate(timeout=90)
    finally:
        imds.close()

    assert proc.returncode == 75, out
    status = world.status("spot")
    assert status["state"] == "PENDING" and status["interruptions"] == 1 and status["attempts"] == 1
    assert "interrupted" in status["message"] and status["instanceType"] == "g5.xlarge"
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "PENDING"]
    saved = re.findall(r"checkpoint: (ckpt-\d+\.pt)", world.log("spot"))[-1]
    assert f"sweeps/e2e/spot/checkpoints/{saved}" in world.bucket.keys("sweeps/e2e/spot/checkpoints/")
    assert "spot interruption notice" in world.log("spot")
    assert status["message"].startswith("attempt 1 interrupted by spot interruption notice {")
    assert "interrupted (received SIGTERM): checkpoint saved" in world.log("spot")
    assert world.bucket.get("sweeps/e2e/spot/results.json") is None


def test_fails_with_the_trainers_message_when_the_data_is_bad(world, tmp_path):
    data = tmp_path / "bad-data"
    shutil.copytree(world.root / "data", data)
    make_relevance_negative(data)

    done = run_job(world.put_job("bad", data=str(data)), tmp_path / "work")

    assert done.returncode == 2
    status = world.status("bad")
    assert (
        status["state"] == "FAILED" and "bad input" in status["message"] and "relevance" in status["message"]
    )
    assert world.bucket.get("sweeps/e2e/bad/results.json") is None


def test_the_last_checkpoint_line_of_a_run_says_every_fold_is_done(world, baseline):
    log = world.log("baseline")
    lines = [line for line in log.splitlines() if line.startswith("checkpoint: ")]
    assert lines and lines[-1].endswith("(all 2 folds done and the final model)"), lines[-3:]
    assert "fold 3" not in log, "a 2-fold run never speaks of a third fold"
