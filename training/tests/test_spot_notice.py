"""The spot interruption notice is the job runner's: ``spot_runner.spot_notice.SpotPoller`` polls IMDSv2, and
in trainer mode too the runner forwards the notice to the trainer as SIGTERM (the trainer checkpoints and
exits 75) and records the notice as the cause. Script mode: test_user_script.py; torchrun:
test_job_torchrun.py; S3 store: test_job_e2e.py."""

from __future__ import annotations

import json
import re
import time

from jobkit import (  # noqa: F401 - fixture
    FAST_POLL,
    LONG_TRAIN,
    FakeImds,
    imds,
    local_job,
    start_job_until,
    states,
    wait_until,
)

from spot_runner.exits import EXIT_INTERRUPTED
from spot_runner.spot_notice import SpotPoller


def test_spot_notice_is_reported_once_with_the_instance_action(imds):  # noqa: F811
    notices: list[str] = []
    poller = SpotPoller(notices.append, endpoint=imds.url, interval_s=0.02)
    assert poller.start_if_on_ec2()
    time.sleep(0.1)
    assert notices == []
    imds.notice("terminate")

    assert wait_until(lambda: notices)
    poller.join(timeout=5)
    assert not poller.is_alive(), "the poller stops after the notice"
    assert len(notices) == 1
    assert notices[0].startswith("spot interruption notice ") and '"action": "terminate"' in notices[0]
    gets = [r for r in imds.requests if r.startswith("GET ")]
    assert gets and all(r == "GET /latest/meta-data/spot/instance-action" for r in gets)


def test_a_halted_poller_reports_nothing(imds):  # noqa: F811
    notices: list[str] = []
    poller = SpotPoller(notices.append, endpoint=imds.url, interval_s=0.02)
    assert poller.start_if_on_ec2()
    poller.halt()
    poller.join(timeout=5)
    imds.notice()
    time.sleep(0.1)
    assert notices == [] and not poller.is_alive()


def test_poller_does_not_start_off_ec2():
    poller = SpotPoller(lambda _reason: None, endpoint="http://127.0.0.1:9", timeout_s=0.2)
    assert not poller.start_if_on_ec2()
    assert not poller.is_alive()


def test_endpoint_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPOT_SWEEP_IMDS_ENDPOINT", "http://10.0.0.1:8080/")
    assert SpotPoller(lambda _reason: None).imds.url == "http://10.0.0.1:8080"


def test_poll_interval_comes_from_the_environment_and_defaults_to_5_seconds(monkeypatch):
    monkeypatch.delenv("SPOT_SWEEP_SPOT_POLL_SECONDS", raising=False)
    assert SpotPoller(lambda _reason: None).interval_s == 5.0
    monkeypatch.setenv("SPOT_SWEEP_SPOT_POLL_SECONDS", "0.25")
    assert SpotPoller(lambda _reason: None).interval_s == 0.25
    monkeypatch.setenv("SPOT_SWEEP_SPOT_POLL_SECONDS", "soon")
    assert SpotPoller(lambda _reason: None).interval_s == 5.0


def test_the_runner_forwards_a_spot_notice_to_the_trainer_as_sigterm(tmp_path, make_dataset, imds):  # noqa: F811
    job, store = local_job(tmp_path, make_dataset(), **LONG_TRAIN)
    proc = start_job_until(
        job,
        tmp_path / "work",
        "checkpoint: ckpt-",
        "the trainer's first checkpoint",
        "--sync-seconds",
        "0.3",
        env={"SPOT_SWEEP_IMDS_ENDPOINT": imds.url, **FAST_POLL},
    )

    imds.notice("terminate")
    out, _ = proc.communicate(timeout=90)

    assert proc.returncode == EXIT_INTERRUPTED, out
    assert "spot: polling the interruption notice every 0.2 s" in out
    log = (store / "train.log").read_text()
    # The runner's line (why), then the trainer's own: it got SIGTERM, saved a checkpoint and exited 75.
    notice = re.search(r"spot interruption notice \{[^\n]*\"action\": \"terminate\"[^\n]*SIGTERM\)", log)
    assert notice, log[-3000:]
    assert "interrupted (received SIGTERM): checkpoint saved" in log[notice.end() :]
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "PENDING" and status["interruptions"] == 1, status
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "PENDING"]
    assert status["message"].startswith("attempt 1 interrupted by spot interruption notice {"), status
    assert '"action": "terminate"' in status["message"]
    saved = re.findall(r"checkpoint: (ckpt-\d+\.pt)", log)[-1]
    assert (store / "checkpoints" / saved).is_file(), "the checkpoint saved on the notice reached the store"
    assert status["message"].endswith(f"the next attempt resumes from {saved}")
    assert not (store / "results.json").exists()
