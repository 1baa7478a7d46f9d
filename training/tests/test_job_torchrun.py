"""The job runner with the trainer under torchrun (DDP over gloo on CPU, forced with SPOT_SWEEP_NPROC=2).

torchrun reports any failed worker as exit code 1, so the runner reads the trainer's OUT/status.json (written
by rank 0) to tell an interruption (75) or bad input (2) from a crash; without that a multi-GPU spot
interruption would end FAILED and the instance would be removed instead of resumed."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from conftest import make_relevance_negative
from jobkit import LONG_TRAIN, imds, local_job, run_job, start_job_until, states  # noqa: F401 - fixture

from spot_runner.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, trainer_exit
from two_tower.progress import status_doc, write_json_atomic

TORCHRUN = {"SPOT_SWEEP_NPROC": "2"}


def write_status(path: Path, state: str, **fields) -> dict:
    write_json_atomic(path, status_doc(state, fields))
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("rc", "state", "fields", "expected"),
    [
        (
            1,
            "INTERRUPTED",
            {"message": "stopped: received SIGTERM"},
            (EXIT_INTERRUPTED, "stopped: received SIGTERM"),
        ),
        (75, "INTERRUPTED", {"message": "stopped"}, (EXIT_INTERRUPTED, "stopped")),
        (
            1,
            "FAILED",
            {"message": "pairs.csv: no rows.", "exitCode": 2},
            (EXIT_BAD_INPUT, "pairs.csv: no rows."),
        ),
        (1, "FAILED", {"message": "crashed: RuntimeError: boom", "exitCode": 1}, (EXIT_FAILED, None)),
        (1, "TRAINING", {"progress": 0.5}, (EXIT_FAILED, None)),
        (-9, "TRAINING", {}, (-9, None)),
        (0, "SUCCEEDED", {}, (0, None)),
    ],
)
def test_reads_what_the_trainer_meant_from_its_status_file(tmp_path, rc, state, fields, expected):
    status = write_status(tmp_path / "status.json", state, **fields)

    assert trainer_exit(rc, status) == expected


def test_an_exit_code_stands_when_the_trainer_left_no_status(tmp_path):
    assert trainer_exit(2, None) == (EXIT_BAD_INPUT, None)  # e.g. argparse's usage error
    assert trainer_exit(1, ["not", "a", "status"]) == (EXIT_FAILED, None)


def start_torchrun_job(tmp_path: Path, data: Path, env: dict | None = None):
    job, store = local_job(tmp_path, data, **LONG_TRAIN)
    proc = start_job_until(
        job,
        tmp_path / "work",
        "checkpoint: ckpt-",
        "the first checkpoint under torchrun",
        "--sync-seconds",
        "0.3",
        env={**TORCHRUN, **(env or {})},
        timeout=150,
    )
    return proc, store


def assert_interrupted_and_resumable(proc, store: Path, out: str) -> dict:
    assert proc.returncode == EXIT_INTERRUPTED, out
    assert "DDP over 2 processes (gloo)" in out
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "PENDING" and status["interruptions"] == 1, status
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "PENDING"]
    saved = re.findall(r"checkpoint: (ckpt-\d+\.pt)", out)[-1]
    assert (store / "checkpoints" / saved).is_file(), "the checkpoint saved on the stop reached the store"
    assert saved in status["message"]
    return status


def test_sigterm_under_torchrun_ends_interrupted_not_failed(tmp_path, make_dataset):
    proc, store = start_torchrun_job(tmp_path, make_dataset())

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)

    status = assert_interrupted_and_resumable(proc, store, out)
    assert "interrupted by SIGTERM" in status["message"]


def test_spot_notice_under_torchrun_ends_interrupted_not_failed(tmp_path, make_dataset, imds):  # noqa: F811
    # The runner polls the notice and SIGTERMs torchrun, which forwards it: every rank checkpoints and
    # exits 75, torchrun exits 1, and the runner reads the trainer's status.json; the cause is the notice.
    env = {"SPOT_SWEEP_IMDS_ENDPOINT": imds.url, "SPOT_SWEEP_SPOT_POLL_SECONDS": "0.2"}
    proc, store = start_torchrun_job(tmp_path, make_dataset(), env)

    imds.notice()
    out, _ = proc.communicate(timeout=120)

    status = assert_interrupted_and_resumable(proc, store, out)
    assert status["message"].startswith("attempt 1 interrupted by spot interruption notice {")


def test_fails_as_bad_input_under_torchrun_with_the_trainers_message(tmp_path, make_dataset):
    data = make_dataset()
    make_relevance_negative(data)
    job, store = local_job(tmp_path, data)

    done = run_job(job, tmp_path / "work", env=TORCHRUN, timeout=150)

    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-3000:]
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED"
    assert status["message"].startswith("The trainer stopped on bad input: ")
    assert "relevance -1 is negative" in status["message"] and "pairs.csv, line" in status["message"]
