"""status.json has one writer, the job runner; requests come through control.json, which the runner
obeys (training/contract/status.schema.json, control.schema.json)."""

from __future__ import annotations

import copy
import hashlib
import json
import signal
import socket
import threading
import uuid
from pathlib import Path

import pytest
from jobkit import job_doc, local_job, run_job, start_job, states, wait_for

import contract
from spot_runner.status_board import StatusBoard
from spot_runner.storage import open_store
from two_tower import synth


def read(store_dir: Path) -> dict:
    return json.loads((store_dir / "status.json").read_text())


def request(store_dir: Path, action: str, by: str, reason: str) -> dict:
    """What a requester (spot-sweep stop, the budget guard) does: write control.json whole."""
    doc = {
        "version": 1,
        "action": action,
        "by": by,
        "reason": reason,
        "at": "2026-12-01T12:00:00Z",
        "id": str(uuid.uuid4()),
    }
    assert contract.problems("control", doc) == []
    (store_dir / "control.json").write_text(json.dumps(doc))
    return doc


def board_in(tmp_path: Path) -> tuple[StatusBoard, Path]:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    board = StatusBoard.load(open_store(store_dir.as_uri() + "/"))
    board.doc.update(sweep="demo", config="baseline")
    board.set("PENDING", attempts=0, interruptions=0)
    return board, store_dir


def test_every_write_fits_the_status_schema(tmp_path):
    board, store_dir = board_in(tmp_path)
    board.set("TRAINING")
    board.progress({"fold": 0, "folds": 5, "epoch": 1, "epochs": 2, "progress": 0.5, "loss": float("nan")})
    board.set("SUCCEEDED", progress=1.0, etaSeconds=0)

    status = read(store_dir)
    assert contract.problems("status", status) == []
    assert status["loss"] is None, "a NaN loss is written as null: status.json stays strict JSON"
    assert states(status) == ["PENDING", "TRAINING", "SUCCEEDED"]


def test_keys_of_an_older_version_or_another_writer_are_dropped(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "status.json").write_text(
        json.dumps({"state": "TRAINING", "spendUsd": 1.25, "sweep": "demo", "config": "baseline"})
    )
    board = StatusBoard.load(open_store(store_dir.as_uri() + "/"))
    board.set("PENDING")

    status = read(store_dir)
    assert "spendUsd" not in status and contract.problems("status", status) == []


def test_fails_when_someone_else_writes_status_json_it_is_logged_and_the_runner_view_stands(tmp_path, capfd):
    board, store_dir = board_in(tmp_path)
    (store_dir / "status.json").write_text(json.dumps({**read(store_dir), "state": "STOPPED"}))

    board.set("TRAINING")

    assert read(store_dir)["state"] == "TRAINING"
    assert "written by someone other than this runner" in capfd.readouterr().err


def test_a_stop_request_before_the_attempt_keeps_the_job_stopped(tmp_path, make_dataset):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=1)
    store_dir.mkdir(parents=True, exist_ok=True)
    asked = request(store_dir, "stop", "spot-sweep stop", "stopped with spot-sweep stop")
    proc = start_job(job, tmp_path / "work")
    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == contract.EXIT_CODES["runner"]["stopped"], out
    status = read(store_dir)
    assert status["state"] == "STOPPED" and status["message"] == "stopped with spot-sweep stop"
    assert status["stoppedBy"] == "spot-sweep stop" and status["stopRequestId"] == asked["id"]
    assert not (store_dir / "results.json").exists()


def test_a_start_request_lets_a_stopped_job_run(tmp_path, make_dataset):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=1)
    store_dir.mkdir(parents=True, exist_ok=True)
    request(store_dir, "start", "spot-sweep local", "run with spot-sweep local")
    proc = start_job(job, tmp_path / "work")
    out, _ = proc.communicate(timeout=180)

    assert proc.returncode == 0, out
    assert read(store_dir)["state"] == "SUCCEEDED"


def test_a_stop_request_while_it_trains_checkpoints_and_ends_stopped_with_its_reason(tmp_path, make_dataset):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=400, batchSize=16, checkpointMinutes=0.005)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    wait_for(
        lambda: read(store_dir).get("progress") if (store_dir / "status.json").exists() else None,
        "progress in the store",
        timeout=90,
        proc=proc,
    )
    before = (store_dir / "status.json").stat().st_mtime_ns

    request(store_dir, "stop", "budget-guard", "Stopped by the sweep budget: spent $5.10 of $5.00.")
    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == contract.EXIT_CODES["runner"]["stopped"], out
    status = read(store_dir)
    assert status["state"] == "STOPPED" and status["stoppedBy"] == "budget-guard"
    assert status["message"].startswith("Stopped by the sweep budget: spent $5.10 of $5.00.")
    assert "resumes from it" in status["message"], "the kept checkpoint is named"
    assert list((store_dir / "checkpoints").iterdir()), "the checkpoint went up before STOPPED"
    assert (store_dir / "status.json").stat().st_mtime_ns > before
    assert states(status)[-2:] == ["TRAINING", "STOPPED"]
    assert contract.problems("status", status) == []


def test_a_sigterm_after_a_stop_request_still_ends_stopped_with_the_request_reason(tmp_path, make_dataset):
    # A scale-in (the guard or `stop` scaling the group to zero) sends SIGTERM, possibly before the
    # runner's next tick has read control.json: the request still names the outcome.
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=400, batchSize=16, checkpointMinutes=0.005)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "30")
    wait_for(
        lambda: read(store_dir).get("state") == "TRAINING" if (store_dir / "status.json").exists() else None,
        "TRAINING in the store",
        timeout=90,
        proc=proc,
    )
    request(store_dir, "stop", "spot-sweep stop", "stopped with spot-sweep stop")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == contract.EXIT_CODES["runner"]["stopped"], out
    status = read(store_dir)
    assert status["state"] == "STOPPED" and status["stoppedBy"] == "spot-sweep stop"


def test_a_stop_the_previous_job_obeyed_does_not_block_a_changed_job(tmp_path, make_dataset):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=1)
    request(store_dir, "stop", "spot-sweep stop", "stopped with spot-sweep stop")
    first = start_job(job, tmp_path / "work")
    first.communicate(timeout=120)
    assert first.returncode == contract.EXIT_CODES["runner"]["stopped"]

    doc = json.loads((store_dir / "job.json").read_text())
    doc["train"]["seed"] = 8  # the config edited and deployed again
    doc["train"]["epochs"] = 3
    (store_dir / "job.json").write_text(json.dumps(doc))
    # Sync ticks every 0.1 s read control.json again while it trains: the old stop stays ignored there too.
    second = start_job(job, tmp_path / "work", "--sync-seconds", "0.1")
    out, _ = second.communicate(timeout=180)

    assert second.returncode == 0, out
    assert read(store_dir)["state"] == "SUCCEEDED"
    assert (tmp_path / "work" / "train.log").read_text().count("=== attempt") == 1  # started over: attempt 1


def test_a_changed_job_moves_the_old_results_to_history_so_no_reader_ranks_them(tmp_path, make_dataset):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=1)
    first = start_job(job, tmp_path / "work")
    first.communicate(timeout=180)
    assert first.returncode == 0
    old = json.loads((store_dir / "results.json").read_text())

    doc = json.loads((store_dir / "job.json").read_text())
    doc["data"] = str(tmp_path / "missing")  # the edited config then fails
    (store_dir / "job.json").write_text(json.dumps(doc))
    second = start_job(job, tmp_path / "work")
    second.communicate(timeout=120)

    assert second.returncode == contract.EXIT_CODES["runner"]["badInput"]
    assert read(store_dir)["state"] == "FAILED"
    assert not (store_dir / "results.json").exists(), "a FAILED job leaves no results.json beside it"
    kept = list((store_dir / "history").glob("*/results.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == old
    assert old["job"]["jobDigest"].replace("sha256:", "").startswith(kept[0].parent.name)
    # The moved results still say when they were made: the report's History lists it.
    assert old["job"]["finishedAt"] <= read(store_dir)["updatedAt"]


def test_a_sigterm_before_the_child_starts_still_obeys_a_standing_stop(tmp_path, make_dataset):
    # A big dataset copy or a slow IMDS can keep the runner busy before the trainer starts: here an
    # instance metadata stand-in on 127.0.0.1 that accepts connections and never answers (1 s timeouts).
    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.extend(silent.accept() for _ in range(4)), daemon=True).start()
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=1)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    proc = start_job(job, tmp_path / "work", env={"SPOT_SWEEP_IMDS_ENDPOINT": endpoint})
    wait_for(
        lambda: (store_dir / "status.json").exists() and read(store_dir)["state"] == "PENDING",
        "PENDING",
        timeout=60,
        proc=proc,
    )
    request(store_dir, "stop", "budget-guard", "Stopped by the sweep budget.")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == contract.EXIT_CODES["runner"]["stopped"], out
    assert read(store_dir)["state"] == "STOPPED" and read(store_dir)["stoppedBy"] == "budget-guard"
    silent.close()


def test_fails_when_a_second_runner_starts_on_the_config_it_names_the_holder_and_changes_nothing(
    tmp_path, make_dataset
):
    job, store_dir = local_job(tmp_path, make_dataset(), epochs=400, batchSize=16, checkpointMinutes=0.005)
    first = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    wait_for(
        lambda: (store_dir / "status.json").exists() and read(store_dir).get("progress"),
        "the first runner training",
        timeout=90,
        proc=first,
    )
    before = read(store_dir)

    second = start_job(job, tmp_path / "work")
    out, _ = second.communicate(timeout=60)

    assert second.returncode == contract.EXIT_CODES["runner"]["busy"], out
    assert f"another job runner (pid {first.pid}) is running test-sweep/tiny" in out
    assert "Traceback" not in out
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    status = read(store_dir)
    assert status["attempts"] == before["attempts"] == 1, "the attempt history stays whole"
    assert "written by someone other than this runner" not in first.output()


# An unreadable status.json (issue 9): a SUCCEEDED job is not trained again, and no byte is lost -------------

UNREADABLE = {
    "not JSON (cut short)": b'{"version": 1, "state": "SUCC',
    "not UTF-8": b"\xff\xfe\x00s\x00t",
    "empty": b"",
    "not an object": b'["SUCCEEDED"]',
    "an unknown state": b'{"state": "DONE", "attempts": 1, "interruptions": 0}',
    "attempts that are not a number": b'{"state": "SUCCEEDED", "attempts": "two", "interruptions": 0}',
}


@pytest.fixture(scope="module")
def finished_results(tmp_path_factory) -> dict:
    """results.json of a tiny job that SUCCEEDED: what a finished config holds beside its status.json."""
    root = tmp_path_factory.mktemp("finished")
    data = synth.generate(
        root / "data", queries=60, docs=120, dim=8, latent=4, candidates=6, positives=2, seed=3
    )
    job, store_dir = local_job(root, data, epochs=1)
    done = run_job(job, root / "work")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((store_dir / "results.json").read_text())


def finished_store(
    tmp_path: Path, results: dict | None, status: bytes, data: Path, of_this_job: bool
) -> Path:
    """A config's store after its job finished, with ``status`` as its status.json and ``results`` (when
    given) as its results.json, belonging to this job.json (``ours``) or to an earlier one."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    raw = json.dumps(job_doc(store_dir.as_uri() + "/", str(data))).encode()
    (store_dir / "job.json").write_bytes(raw)
    if results is not None:
        results = copy.deepcopy(results)
        results["job"]["jobDigest"] = "sha256:" + (
            hashlib.sha256(raw).hexdigest() if of_this_job else "0" * 64
        )
        (store_dir / "results.json").write_text(json.dumps(results, indent=2))
    (store_dir / "status.json").write_bytes(status)
    return store_dir


def kept_status_copies(store_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((store_dir / "history").glob("status.json.unreadable-*"))]


@pytest.mark.parametrize("damage", UNREADABLE)
def test_a_succeeded_job_whose_status_is_unreadable_is_rebuilt_from_its_results_and_not_trained(
    tmp_path, finished_results, damage
):
    # No data: any attempt to train would fail; the job must end at its results.
    store_dir = finished_store(tmp_path, finished_results, UNREADABLE[damage], tmp_path / "no-data", True)
    results_before = (store_dir / "results.json").read_bytes()

    done = run_job(str(store_dir / "job.json"), tmp_path / "work")

    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "unreadable" in line]
    assert len(notes) == 1 and "rebuilt" in notes[0] and "results.json" in notes[0], done.stderr
    status = read(store_dir)
    assert contract.problems("status", status) == []
    assert status["state"] == "SUCCEEDED" and status["progress"] == 1.0
    job = json.loads(results_before)["job"]
    for key in ("attempts", "interruptions", "instanceType", "market", "jobDigest"):
        assert status[key] == job[key], key
    assert (store_dir / "results.json").read_bytes() == results_before
    assert kept_status_copies(store_dir) == [UNREADABLE[damage]], "the unreadable bytes are kept"
    assert not (tmp_path / "work" / "train.log").exists(), "nothing was trained"


@pytest.mark.parametrize("results_of", ["an earlier job.json", "no job (there are none)"])
def test_an_unreadable_status_without_this_jobs_results_starts_afresh_and_keeps_its_bytes(
    tmp_path, make_dataset, finished_results, results_of
):
    earlier = results_of == "an earlier job.json"
    damaged = b'{"version": 1, "state": "TRAI'
    store_dir = finished_store(
        tmp_path, finished_results if earlier else None, damaged, make_dataset(), False
    )
    old_results = (store_dir / "results.json").read_bytes() if earlier else None

    done = run_job(str(store_dir / "job.json"), tmp_path / "work")

    assert done.returncode == 0, done.stderr[-3000:]
    assert kept_status_copies(store_dir) == [damaged], "the unreadable bytes are kept"
    status = read(store_dir)
    assert status["state"] == "SUCCEEDED" and status["attempts"] == 1
    results = json.loads((store_dir / "results.json").read_text())
    assert results["job"]["jobDigest"] == status["jobDigest"] != "sha256:" + "0" * 64
    if earlier:  # the earlier job's results are kept where start_over keeps them, never ranked as this one's
        assert (store_dir / "history" / ("0" * 16) / "results.json").read_bytes() == old_results


def test_a_failure_recorded_from_outside_keeps_an_unreadable_status(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "job.json").write_text(json.dumps(job_doc(store_dir.as_uri() + "/", str(tmp_path))))
    (store_dir / "status.json").write_bytes(UNREADABLE["not JSON (cut short)"])

    done = run_job(str(store_dir / "job.json"), tmp_path / "work", "--fail", "no GPU driver on this instance")

    assert done.returncode == 1 and read(store_dir)["state"] == "FAILED"
    assert not contract.problems("status", read(store_dir)), "a status written from outside fits its schema"
    assert kept_status_copies(store_dir) == [UNREADABLE["not JSON (cut short)"]]


def test_a_scale_in_recorded_from_outside_is_stopped_by_scale_in_with_the_stopped_exit(tmp_path):
    # The bootstrap saw its group terminating the instance before the job started (bootstrap.sh --stopped).
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "job.json").write_text(json.dumps(job_doc(store_dir.as_uri() + "/", str(tmp_path))))
    reason = "Stopped by a scale-in: the Auto Scaling group began terminating this instance during setup."

    done = run_job(str(store_dir / "job.json"), tmp_path / "work", "--stopped", reason)

    status = read(store_dir)
    assert done.returncode == contract.EXIT_CODES["runner"]["stopped"], done.stderr
    assert status["state"] == "STOPPED" and status["message"] == reason
    assert status["stoppedBy"] == contract.STOP_CAUSES["scaleIn"]
    assert not contract.problems("status", status)
