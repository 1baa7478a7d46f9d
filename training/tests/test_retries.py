"""Bounded retries of a failed job (job.json ``retries``, spot_runner/retries.py): a failing script is run
again from its own checkpoint up to ``max`` times, every attempt and its cause in the status history;
bad input is never retried; the count survives a replacement instance; a stop that comes first wins."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
from jobkit import job_doc, run_job, start_job, start_job_until, wait_for

import contract
from spot_runner import retries

# The script counts its runs in a marker file outside the store and the work directory (argv[1]), records
# what it found in its checkpoint dir, leaves a checkpoint of its own, and exits argv[2] on its first
# argv[3] runs; on run argv[4] it instead waits to be stopped; argv[5], when given, is a control.json to
# write (a stop request) before it fails.
FLAKY = """\
import json, os, pathlib, sys, time
marker, code, failing, hang = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ck = pathlib.Path(os.environ["SPOT_SWEEP_CHECKPOINT_DIR"])
ck.mkdir(parents=True, exist_ok=True)
seen = sorted(p.name for p in ck.iterdir())
run = int(marker.read_text()) + 1 if marker.exists() else 1
marker.write_text(str(run))
with open(str(marker) + ".runs", "a") as fh:
    fh.write(json.dumps({"run": run, "seen": seen}) + "\\n")
(ck / f"step-{run}.txt").write_text("state")
if run == hang:
    time.sleep(120)
if run <= failing:
    if len(sys.argv) > 5:
        stop = {"version": 1, "action": "stop", "by": "spot-sweep stop", "reason": "stopped by the test",
                "at": "2026-01-01T00:00:00Z", "id": "req-test"}
        pathlib.Path(sys.argv[5]).write_text(json.dumps(stop))
    print(f"run {run} fails", flush=True)
    sys.exit(code)
os.makedirs("results", exist_ok=True)
json.dump({"seen": seen}, open("results/out.json", "w"))
"""


def flaky_job(
    tmp_path: Path,
    *,
    max: int,
    codes: list[int] | None = None,
    exit_code: int = 3,
    failing: int = 1,
    hang: int = 0,
    control: bool = False,
) -> tuple[Path, Path, Path]:
    """job.json (script mode, a local store) of the flaky script: the job file, the store, the marker."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(FLAKY)
    store = tmp_path / "store"
    store.mkdir()
    marker = tmp_path / "runs"
    args = [str(marker), str(exit_code), str(failing), str(hang)]
    if control:
        args.append(str(store / "control.json"))
    script = {
        "code": str(code),
        "entrypoint": "train.py",
        "args": args,
        "patches": [],
        "results": "results/*.json",
    }
    doc = job_doc(store.as_uri() + "/", None, script=script, retries={"max": max, "onExitCodes": codes or []})
    (store / "job.json").write_text(json.dumps(doc))
    return store / "job.json", store, marker


def status(store: Path) -> dict:
    """The stored status.json, which must fit status.schema.json (history causes and exit codes included)."""
    doc = json.loads((store / "status.json").read_text())
    assert contract.problems("status", doc) == []
    return doc


def failures(doc: dict) -> list[dict]:
    return [h for h in doc["history"] if h["state"] == "FAILED"]


def runs(marker: Path) -> list[dict]:
    path = Path(str(marker) + ".runs")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_script_that_fails_once_is_retried_from_its_checkpoint_and_succeeds(tmp_path):
    job, store, marker = flaky_job(tmp_path, max=1)
    done = run_job(str(job), tmp_path / "work")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = status(store)
    assert doc["state"] == "SUCCEEDED" and doc["attempts"] == 2
    assert doc["retries"] == {"used": 1, "max": 1}
    [failed] = failures(doc)
    assert failed["attempt"] == 1 and failed["exitCode"] == 3
    assert "exited with code 3" in failed["cause"] and "retry 1 of 1" in failed["cause"]
    assert doc["history"][-1] == {**doc["history"][-1], "state": "SUCCEEDED", "attempt": 2}
    # The second run saw the first run's checkpoint in its SPOT_SWEEP_CHECKPOINT_DIR.
    assert runs(marker) == [{"run": 1, "seen": []}, {"run": 2, "seen": ["step-1.txt"]}]
    assert json.loads((store / "results" / "results" / "out.json").read_text()) == {"seen": ["step-1.txt"]}
    log = (store / "train.log").read_text()
    assert "=== attempt 2 (retry 1 of 1)" in log and "resuming from step-1.txt" in log


def test_fails_at_once_when_retries_max_is_0(tmp_path):
    job, store, marker = flaky_job(tmp_path, max=0)
    done = run_job(str(job), tmp_path / "work")
    assert done.returncode == 1, done.stderr[-3000:]
    doc = status(store)
    assert doc["state"] == "FAILED" and doc["attempts"] == 1 and doc["retries"] == {"used": 0, "max": 0}
    [failed] = failures(doc)
    assert failed["exitCode"] == 3 and "not retried (retries.max is 0)" in failed["cause"]
    assert len(runs(marker)) == 1


def test_fails_without_a_retry_when_the_exit_code_is_not_in_on_exit_codes(tmp_path):
    job, store, marker = flaky_job(tmp_path, max=2, codes=[4])
    done = run_job(str(job), tmp_path / "work")
    assert done.returncode == 1, done.stderr[-3000:]
    doc = status(store)
    assert doc["state"] == "FAILED" and doc["retries"] == {"used": 0, "max": 2}
    assert "retries.onExitCodes is [4]" in failures(doc)[0]["cause"]
    assert "retries.onExitCodes is [4]" in doc["message"]  # the user asked for retries: told why none
    assert len(runs(marker)) == 1


def test_fails_without_a_retry_on_a_bad_input_exit_code_even_when_it_is_listed(tmp_path):
    job, store, marker = flaky_job(tmp_path, max=3, codes=[2], exit_code=2)
    done = run_job(str(job), tmp_path / "work")
    assert done.returncode == 1, done.stderr[-3000:]
    doc = status(store)
    [failed] = failures(doc)
    assert doc["state"] == "FAILED" and failed["exitCode"] == 2
    assert "bad input or usage" in failed["cause"] and "never retried" in failed["cause"]
    assert len(runs(marker)) == 1


def test_the_job_ends_failed_after_the_last_retry_with_every_attempt_in_the_history(tmp_path):
    job, store, marker = flaky_job(tmp_path, max=2, failing=5)
    done = run_job(str(job), tmp_path / "work")
    assert done.returncode == 1, done.stderr[-3000:]
    doc = status(store)
    assert doc["state"] == "FAILED" and doc["attempts"] == 3 and doc["retries"] == {"used": 2, "max": 2}
    assert [(h["attempt"], h["exitCode"]) for h in failures(doc)] == [(1, 3), (2, 3), (3, 3)]
    assert "no retries left (2 of 2 used)" in failures(doc)[-1]["cause"]
    assert len(runs(marker)) == 3


def test_retries_used_persist_when_a_replacement_instance_continues_the_job(tmp_path):
    # Run 1 fails (retry 1 of 2), run 2 is interrupted (SIGTERM, as at a spot notice): the job is PENDING.
    job, store, marker = flaky_job(tmp_path, max=2, failing=5, hang=2)
    first = start_job(str(job), tmp_path / "work-a")
    wait_for(lambda: marker.exists() and marker.read_text() == "2", "the retried run", proc=first)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 75, out[-3000:]
    assert status(store)["state"] == "PENDING" and status(store)["retries"] == {"used": 1, "max": 2}
    # A second runner, another work directory (a replacement instance), has one retry left, not two.
    done = run_job(str(job), tmp_path / "work-b")
    assert done.returncode == 1, done.stderr[-3000:]
    doc = status(store)
    assert doc["state"] == "FAILED" and doc["retries"] == {"used": 2, "max": 2} and doc["interruptions"] == 1
    assert [h["attempt"] for h in failures(doc)] == [1, 3, 4]
    assert len(runs(marker)) == 4
    assert runs(marker)[2]["seen"] == ["step-1.txt", "step-2.txt"]  # the replacement resumed from the store


def test_a_stop_request_that_comes_with_the_failure_wins_over_the_retry(tmp_path):
    job, store, marker = flaky_job(tmp_path, max=2, control=True)
    done = run_job(str(job), tmp_path / "work")
    assert done.returncode == 76, done.stderr[-3000:]
    doc = status(store)
    assert doc["state"] == "STOPPED" and doc["stopRequestId"] == "req-test"
    assert doc["retries"] == {"used": 0, "max": 2} and len(runs(marker)) == 1
    [failed] = failures(doc)  # the failed attempt is in the history all the same
    assert failed["exitCode"] == 3 and failed["attempt"] == 1


@pytest.mark.parametrize(
    ("policy", "code", "used", "retry", "says"),
    [
        ({"max": 2, "onExitCodes": []}, 1, 0, True, "retry 1 of 2"),
        ({"max": 2, "onExitCodes": []}, 1, 2, False, "no retries left (2 of 2 used)"),
        ({"max": 2, "onExitCodes": [137]}, 137, 1, True, "retry 2 of 2"),
        ({"max": 2, "onExitCodes": [137]}, 1, 0, False, "retries.onExitCodes is [137]"),
        ({"max": 10, "onExitCodes": []}, 2, 0, False, "never retried"),
        ({"max": 10, "onExitCodes": [75]}, 75, 0, False, "never retried"),
        (None, 1, 0, False, "retries.max is 0"),
    ],
)
def test_the_policy_retries_only_listed_failures_within_max(policy, code, used, retry, says):
    decision = retries.decide(policy, code, used)
    assert decision.retry is retry and says in decision.cause


def test_the_count_comes_from_the_stored_status_and_a_damaged_one_counts_as_none():
    assert retries.counts({"retries": {"used": 2, "max": 5}}, {"max": 3, "onExitCodes": []}) == {
        "used": 2,
        "max": 3,
    }
    assert retries.counts({"retries": {"used": "x"}}, {"max": 1, "onExitCodes": []}) == {"used": 0, "max": 1}
    assert retries.counts({}, None) == {"used": 0, "max": 0}


def test_fails_when_job_json_has_no_retries_or_bad_ones_naming_each_field(tmp_path):
    from spot_runner.jobfile import parse_job
    from spot_runner.runlog import JobError

    doc = job_doc("file:///tmp/store/", "/tmp/data")
    del doc["retries"]
    with pytest.raises(JobError, match=r"'retries' is a required property.*Fix: correct these fields"):
        parse_job(json.dumps(doc).encode(), "job.json")
    doc["retries"] = {"max": 11, "onExitCodes": [0], "attempts": 2}
    with pytest.raises(JobError) as caught:
        parse_job(json.dumps(doc).encode(), "job.json")
    for field in ("`retries.max`", "`retries.onExitCodes[0]`", "'attempts' was unexpected"):
        assert field in caught.value.message


def test_the_trainer_killed_mid_fold_is_retried_on_the_same_instance_from_its_checkpoint(
    tiny_dataset, tmp_path
):
    # SIGKILL, as the kernel's OOM killer sends: exit 137 (128 + 9), listed in onExitCodes.
    store = tmp_path / "store"
    store.mkdir()
    doc = job_doc(store.as_uri() + "/", str(tiny_dataset), retries={"max": 1, "onExitCodes": [137]})
    doc["train"].update(epochs=6, batchSize=16, checkpointMinutes=0.001)
    (store / "job.json").write_text(json.dumps(doc))
    work = tmp_path / "work"
    proc = start_job_until(
        str(store / "job.json"),
        work,
        "checkpoint: ckpt-00000002.pt",
        "the second checkpoint",
        "--sync-seconds",
        "0.2",
    )
    os.kill(int((work / "child.pid").read_text()), signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    doc = status(store)
    assert doc["state"] == "SUCCEEDED" and doc["attempts"] == 2 and doc["retries"] == {"used": 1, "max": 1}
    [failed] = failures(doc)
    assert (
        failed["exitCode"] == 137
        and "killed by signal 9" in failed["cause"]
        and "retry 1 of 1" in failed["cause"]
    )
    resumed = re.search(r"resume: from fold (\d+) epoch (\d+) step (\d+)", out)
    assert resumed and resumed[0] != "resume: from fold 1 epoch 1 step 0", (
        "the retry did not resume from a checkpoint"
    )
    assert json.loads((store / "results.json").read_text())["job"]["attempts"] == 2
