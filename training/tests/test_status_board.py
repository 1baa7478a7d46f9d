"""status.json has other writers besides the runner: the budget guard merges ``spendUsd`` (and may set
STOPPED with a message), ``spot-sweep stop`` sets STOPPED. The runner keeps what it does not own."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from jobkit import local_job, start_job, states, wait_for

from two_tower.status_board import StatusBoard
from two_tower.storage import open_store


def read(store_dir: Path) -> dict:
    return json.loads((store_dir / "status.json").read_text())


def guard_merges(store_dir: Path, **fields) -> dict:
    """What the budget guard Lambda does: read, merge its fields, write back."""
    doc = read(store_dir)
    doc.update(fields)
    (store_dir / "status.json").write_text(json.dumps(doc))
    return doc


def board_in(tmp_path: Path) -> tuple[StatusBoard, Path]:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    board = StatusBoard.load(open_store(store_dir.as_uri() + "/"))
    board.set("PENDING", attempts=0, interruptions=0)
    return board, store_dir


def test_keeps_the_guards_spend_when_it_rewrites_the_status(tmp_path):
    board, store_dir = board_in(tmp_path)
    guard_merges(store_dir, spendUsd=1.25, stoppedBy=None)

    board.set("TRAINING")
    assert read(store_dir)["spendUsd"] == 1.25 and read(store_dir)["state"] == "TRAINING"

    guard_merges(store_dir, spendUsd=2.5)
    board.progress({"fold": 0, "progress": 0.5, "loss": 1.0})

    status = read(store_dir)
    assert status["spendUsd"] == 2.5, "the newest spend stands, not the one the runner saw before"
    assert status["progress"] == 0.5 and "stoppedBy" in status


def test_a_stopped_written_elsewhere_stands_and_the_interruption_ends_stopped(tmp_path):
    board, store_dir = board_in(tmp_path)
    board.set("TRAINING")
    guard_merges(
        store_dir, state="STOPPED", stoppedBy="budget", message="sweep budget $5 spent", spendUsd=5.1
    )

    board.progress({"progress": 0.7})  # a tick while the trainer checkpoints

    status = read(store_dir)
    assert status["state"] == "STOPPED" and status["message"] == "sweep budget $5 spent"
    assert status["progress"] == 0.7 and status["spendUsd"] == 5.1

    board.set("PENDING", interruptions=1, message="attempt 1 interrupted by SIGTERM")

    status = read(store_dir)
    assert status["state"] == "STOPPED" and status["message"] == "attempt 1 interrupted by SIGTERM"
    assert states(status) == ["PENDING", "TRAINING", "STOPPED"] and status["stoppedBy"] == "budget"


def test_an_outcome_replaces_a_stopped_written_elsewhere(tmp_path):
    board, store_dir = board_in(tmp_path)
    board.set("TRAINING")
    guard_merges(store_dir, state="STOPPED", message="stop requested with spot-sweep stop")

    board.set("SUCCEEDED", progress=1.0)

    status = read(store_dir)
    assert status["state"] == "SUCCEEDED" and "message" not in status
    assert states(status) == ["PENDING", "TRAINING", "STOPPED", "SUCCEEDED"]


def test_a_job_stopped_before_this_attempt_starts_again(tmp_path):
    board, store_dir = board_in(tmp_path)
    guard_merges(store_dir, state="STOPPED", message="stopped with spot-sweep stop")
    board = StatusBoard.load(open_store(store_dir.as_uri() + "/"))

    board.set("BOOTSTRAPPING", attempts=1)
    board.set("TRAINING")

    assert read(store_dir)["state"] == "TRAINING" and not board.stopped_elsewhere


def test_a_job_stopped_while_it_trains_ends_stopped_keeping_the_spend(tmp_path, make_dataset):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=400, batchSize=16, checkpointMinutes=0.005)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    wait_for(
        lambda: read(store_dir).get("progress") if (store_dir / "status.json").exists() else None,
        "progress in the store",
        timeout=90,
        proc=proc,
    )

    merged = guard_merges(
        store_dir, state="STOPPED", stoppedBy="budget", message="sweep budget spent", spendUsd=3.0
    )
    wait_for(
        lambda: read(store_dir)["progress"] != merged["progress"],
        "the runner's next progress write",
        timeout=60,
        proc=proc,
    )
    assert read(store_dir)["state"] == "STOPPED", "a progress write must not undo the STOPPED"
    proc.send_signal(signal.SIGTERM)  # the group scaled to zero: the instance is shutting down
    out, _ = proc.communicate(timeout=90)

    assert proc.returncode == 75, out
    status = read(store_dir)
    assert status["state"] == "STOPPED" and "interrupted by SIGTERM" in status["message"]
    assert status["spendUsd"] == 3.0 and status["stoppedBy"] == "budget"
