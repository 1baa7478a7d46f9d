"""The stops the job runner decides on its own (spot_runner.own_stop): the instance's deadline, set by the
bootstrap ahead of the SSM step's execution timeout (which SIGKILLs the runner but not the trainer), and a
scale-in, seen as autoscaling/target-lifecycle-state = Terminated while the termination lifecycle hook holds
the instance. Both end like a stop request: checkpoint uploaded, STOPPED with the cause, exit 76, nothing of
the job left running."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from jobkit import (  # noqa: F401
    FAST_POLL,
    LONG_TRAIN,
    FakeImds,
    imds,
    local_job,
    start_job,
    start_job_until,
    states,
    wait_for,
    wait_until,
)

import contract
from spot_runner.spot_notice import SpotPoller

EXIT_STOPPED = contract.EXIT_CODES["runner"]["stopped"]


def status_of(store: Path) -> dict:
    return json.loads((store / "status.json").read_text())


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def last_checkpoint(store: Path) -> str:
    return re.findall(r"checkpoint: (ckpt-\d+\.pt)", (store / "train.log").read_text())[-1]


def test_the_runner_stops_at_its_deadline_with_a_checkpoint_and_leaves_no_process(tmp_path, make_dataset):
    # Ten times the default queries: 400 epochs take minutes, so the deadline comes first.
    job, store = local_job(tmp_path, make_dataset(queries=600, docs=1200), **LONG_TRAIN)
    work = tmp_path / "work"
    # Seconds ahead: enough for the child to start and checkpoint on this shared machine, not for 400 epochs.
    proc = start_job(job, work, "--sync-seconds", "0.3", "--deadline", str(time.time() + 25))
    child = int(
        wait_for(lambda: (work / "child.pid").exists() and (work / "child.pid").read_text(), "the child")
    )

    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == EXIT_STOPPED, out
    status = status_of(store)
    assert status["state"] == "STOPPED" and status["stoppedBy"] == contract.STOP_CAUSES["deadline"], status
    assert status["message"].startswith("Stopped at max runtime: the instance's deadline "), status
    assert "maxRuntimeHours 1 in the sweep spec, 3600 s" in status["message"]
    saved = last_checkpoint(store)
    assert (store / "checkpoints" / saved).is_file(), "the checkpoint saved at the deadline reached the store"
    assert status["message"].endswith(f"Checkpoint {saved} is kept: `spot-sweep start` resumes from it.")
    assert states(status)[-2:] == ["TRAINING", "STOPPED"]
    assert contract.problems("status", status) == []
    assert not alive(child), "the trainer outlived the runner"
    assert not (store / "results.json").exists()


def test_a_deadline_already_past_ends_the_job_stopped_before_it_trains(tmp_path, make_dataset):
    # A bootstrap that took the whole time (a driver wait, a slow wheel download): no training starts that
    # SSM would kill half-way.
    job, store = local_job(tmp_path, make_dataset(), epochs=1)
    proc = start_job(job, tmp_path / "work", "--deadline", str(time.time() - 1))

    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == EXIT_STOPPED, out
    status = status_of(store)
    assert status["state"] == "STOPPED" and status["stoppedBy"] == contract.STOP_CAUSES["deadline"]
    assert "TRAINING" not in states(status)
    assert not (tmp_path / "work" / "child.pid").exists() and "running:" not in out
    assert contract.problems("status", status) == []


def test_a_scale_in_checkpoints_uploads_and_ends_stopped_with_its_cause(tmp_path, make_dataset, imds):  # noqa: F811
    job, store = local_job(tmp_path, make_dataset(), **LONG_TRAIN)
    imds.lifecycle("InService")
    proc = start_job_until(
        job,
        tmp_path / "work",
        "checkpoint: ckpt-",
        "the trainer's first checkpoint",
        "--sync-seconds",
        "0.3",
        env={"SPOT_SWEEP_IMDS_ENDPOINT": imds.url, **FAST_POLL},
    )

    imds.lifecycle("Terminated")  # the group began terminating the instance; the hook holds it
    out, _ = proc.communicate(timeout=90)

    assert proc.returncode == EXIT_STOPPED, out
    status = status_of(store)
    assert status["state"] == "STOPPED" and status["stoppedBy"] == contract.STOP_CAUSES["scaleIn"], status
    assert status["message"].startswith("Stopped by a scale-in: the Auto Scaling group is terminating")
    saved = last_checkpoint(store)
    assert (store / "checkpoints" / saved).is_file(), "the checkpoint saved on the scale-in reached the store"
    assert status["message"].endswith(f"Checkpoint {saved} is kept: `spot-sweep start` resumes from it.")
    log = (store / "train.log").read_text()
    assert "scale-in: the Auto Scaling group is terminating this instance: asking the process" in log
    assert contract.problems("status", status) == []


def test_the_poller_reports_the_groups_termination_once_and_ignores_in_service(imds):  # noqa: F811
    seen: list[str] = []
    poller = SpotPoller(
        seen.append, endpoint=imds.url, interval_s=0.02, on_terminating=lambda: seen.append("T")
    )
    imds.lifecycle("InService")
    assert poller.start_if_on_ec2()
    time.sleep(0.2)
    assert seen == []

    imds.lifecycle("Terminated")

    assert wait_until(lambda: seen)
    poller.join(timeout=5)
    assert seen == ["T"] and not poller.is_alive()
    assert "GET /latest/meta-data/autoscaling/target-lifecycle-state" in imds.requests


def test_a_spot_notice_stays_the_cause_when_the_group_terminates_too(imds):  # noqa: F811
    # The group replaces an interrupted spot instance only after EC2 took it: the notice (PENDING, the
    # instance kept) decides, not the termination that follows it.
    seen: list[str] = []
    poller = SpotPoller(
        seen.append, endpoint=imds.url, interval_s=0.02, on_terminating=lambda: seen.append("T")
    )
    imds.notice("terminate")
    imds.lifecycle("Terminated")
    assert poller.start_if_on_ec2()

    poller.join(timeout=5)

    assert len(seen) == 1 and seen[0].startswith("spot interruption notice ")


def test_the_poller_outside_a_group_is_never_stopped_by_a_missing_lifecycle_item(imds):  # noqa: F811
    # Off an Auto Scaling group (an instance started by hand) the item is absent (404): nothing stops.
    seen: list[str] = []
    poller = SpotPoller(
        seen.append, endpoint=imds.url, interval_s=0.02, on_terminating=lambda: seen.append("T")
    )
    assert poller.start_if_on_ec2()
    time.sleep(0.3)
    poller.halt()
    poller.join(timeout=5)
    assert seen == [] and poller.imds.target_lifecycle_state() is None
