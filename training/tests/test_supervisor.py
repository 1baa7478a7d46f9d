"""The child process: nothing the job started outlives it, and every stop is put down to its real cause in
status.json (the runner's own stop, a requester's, a spot notice, the grace-period kill, or a signal that
came from somewhere else)."""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from jobkit import FakeImds, job_doc, local_job, run_job, start_job, states, wait_for

import contract

LINUX = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")

DAEMON = """\
import os, time
here = os.path.dirname(os.path.abspath(__file__))
pid_file = os.path.join(here, "daemon.pid")
if os.fork() == 0:  # the classic daemon: fork, a session of its own, fork again, stdio to /dev/null
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        open(pid_file + ".part", "w").write(str(os.getpid()))
        os.replace(pid_file + ".part", pid_file)
        time.sleep(300)
    os._exit(0)
os.wait()
while not os.path.exists(pid_file):
    time.sleep(0.01)
"""

FINISH = """\
os.makedirs(os.path.join(here, "results"), exist_ok=True)
open(os.path.join(here, "results", "r.json"), "w").write("{}")
"""

STUBBORN = """\
import signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
open(os.path.join(here, "worker.pid"), "w").write(str(worker.pid))
print("epoch 1", flush=True)
while True:
    time.sleep(0.05)
"""

CHECKPOINTING = """\
import os, signal, sys, time
def stop(signum, frame):
    print("script: checkpoint saved, stopping", flush=True)
    sys.exit(75)
signal.signal(signal.SIGTERM, stop)
print("epoch 1", flush=True)
while True:
    time.sleep(0.05)
"""


def _alive(pid: int) -> bool:
    """Running (not merely a zombie waiting for whoever adopted it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _kill(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def script_job(tmp_path: Path, source: str) -> tuple[str, Path]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(source)
    store = tmp_path / "store"
    store.mkdir()
    script = {"code": str(code), "entrypoint": "train.py", "args": [], "patches": [], "results": "results/*"}
    (store / "job.json").write_text(json.dumps(job_doc(store.as_uri() + "/", None, script=script)))
    return str(store / "job.json"), store


def status_of(store: Path) -> dict:
    return json.loads((store / "status.json").read_text())


def request_stop(store: Path, reason: str) -> dict:
    doc = {"version": 1, "action": "stop", "by": "spot-sweep stop", "reason": reason}
    doc.update(at="2026-12-01T12:00:00Z", id=str(uuid.uuid4()))
    (store / "control.json").write_text(json.dumps(doc))
    return doc


def started(work: Path, proc) -> int:
    """Wait for the child's first line; its pid."""
    log = work / "train.log"
    wait_for(lambda: log.exists() and "epoch 1" in log.read_text(), "the child's first line", proc=proc)
    return int((work / "child.pid").read_text())


# process hygiene ----------------------------------------------------------------------------------------


@LINUX
def test_a_daemon_that_left_the_jobs_session_does_not_outlive_the_job(tmp_path):
    job, store = script_job(tmp_path, DAEMON + FINISH)
    work = tmp_path / "work"
    pid = None
    try:
        done = run_job(job, work)
        pid = int((work / "code" / "daemon.pid").read_text())

        assert done.returncode == 0, done.stderr
        assert not _alive(pid), "the double-forked setsid daemon was left running"
        assert status_of(store)["state"] == "SUCCEEDED"
    finally:
        if pid is not None:
            _kill(pid)


@LINUX
def test_a_sigterm_stop_kills_what_did_not_stop_within_the_grace_period_and_says_so(tmp_path):
    job, store = script_job(tmp_path, DAEMON + STUBBORN)
    work = tmp_path / "work"
    proc = start_job(job, work, "--sync-seconds", "0.2", "--grace-seconds", "1")
    pids: list[int] = []
    try:
        child = started(work, proc)
        pids = [int((work / "code" / name).read_text()) for name in ("worker.pid", "daemon.pid")]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)

        assert proc.returncode == 75, out
        assert [pid for pid in [child, *pids] if _alive(pid)] == [], "the script, its worker and its daemon"
        status = status_of(store)
        assert status["state"] == "PENDING"
        assert status["message"] == (
            f"attempt 1 interrupted by SIGTERM (the process (pid {child}) did not stop within 1 s of "
            "SIGTERM; killed)"
        )
    finally:
        _kill(*pids)


# what stopped the job -----------------------------------------------------------------------------------


def test_a_spot_notice_is_named_as_the_cause(tmp_path):
    job, store = script_job(tmp_path, CHECKPOINTING)
    imds = FakeImds()
    try:
        env = {"SPOT_SWEEP_IMDS_ENDPOINT": imds.url, "SPOT_SWEEP_SPOT_POLL_SECONDS": "0.2"}
        proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2", env=env)
        started(tmp_path / "work", proc)
        imds.notice()
        out, _ = proc.communicate(timeout=60)
    finally:
        imds.close()

    assert proc.returncode == 75, out
    status = status_of(store)
    assert status["state"] == "PENDING"
    assert status["message"].startswith(
        'attempt 1 interrupted by spot interruption notice {"action": "terminate"'
    )


@pytest.mark.parametrize(
    ("signum", "state"), [(signal.SIGTERM, "PENDING"), (signal.SIGINT, "STOPPED")], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_to_the_runner_is_named_as_the_cause(tmp_path, signum, state):
    job, store = script_job(tmp_path, CHECKPOINTING)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    started(tmp_path / "work", proc)

    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 75, out
    status = status_of(store)
    assert status["state"] == state and status["message"] == f"attempt 1 interrupted by {signum.name}"


def test_a_stop_request_keeps_the_requesters_reason_verbatim(tmp_path):
    job, store = script_job(tmp_path, CHECKPOINTING)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    started(tmp_path / "work", proc)

    asked = request_stop(store, "Stopped by the sweep budget: spent $5.10 of $5.00.")
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == contract.EXIT_CODES["runner"]["stopped"], out
    status = status_of(store)
    assert status["state"] == "STOPPED" and status["message"] == asked["reason"]
    assert status["stoppedBy"] == "spot-sweep stop" and status["stopRequestId"] == asked["id"]


def test_a_stop_request_the_child_ignored_keeps_the_reason_and_names_the_kill(tmp_path):
    job, store = script_job(
        tmp_path, "import os, time\nhere = os.path.dirname(os.path.abspath(__file__))\n" + STUBBORN
    )
    work = tmp_path / "work"
    proc = start_job(job, work, "--sync-seconds", "0.2", "--grace-seconds", "1")
    worker = None
    try:
        child = started(work, proc)
        worker = int((work / "code" / "worker.pid").read_text())
        asked = request_stop(store, "stopped with spot-sweep stop")
        out, _ = proc.communicate(timeout=60)
    finally:
        if worker:
            _kill(worker)

    assert proc.returncode == contract.EXIT_CODES["runner"]["stopped"], out
    status = status_of(store)
    assert status["state"] == "STOPPED"
    assert status["message"] == (
        f"{asked['reason']} (the process (pid {child}) did not stop within 1 s of SIGTERM; killed)"
    )


def test_a_signal_the_runner_did_not_send_is_not_taken_for_a_spot_notice(tmp_path):
    job, store = script_job(tmp_path, CHECKPOINTING)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    child = started(tmp_path / "work", proc)

    os.kill(child, signal.SIGTERM)  # a user's kill, a shutdown script: not the runner
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 75, out
    status = status_of(store)
    assert status["state"] == "PENDING" and status["interruptions"] == 1
    assert status["message"] == (
        f"attempt 1 interrupted by a signal the runner did not send: the script train.py (pid {child}) "
        "exited with code 75"
    )


def test_a_child_killed_by_a_signal_the_runner_did_not_send_fails_naming_it(tmp_path):
    job, store = script_job(tmp_path, CHECKPOINTING)
    proc = start_job(job, tmp_path / "work", "--sync-seconds", "0.2")
    child = started(tmp_path / "work", proc)

    os.kill(child, signal.SIGKILL)  # the kernel's OOM killer does this
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 1, out
    status = status_of(store)
    assert status["state"] == "FAILED"
    assert status["message"].startswith(
        f"The script train.py (pid {child}) was killed by signal 9 (SIGKILL), a signal the runner did not "
        "send."
    )


def test_a_trainer_stopped_by_a_signal_the_runner_did_not_send_says_so_with_its_own_reason(
    tmp_path, make_dataset
):
    job, store = local_job(tmp_path, make_dataset(), epochs=400, batchSize=16, checkpointMinutes=0.005)
    work = tmp_path / "work"
    proc = start_job(job, work, "--sync-seconds", "0.2")
    wait_for(
        lambda: (store / "status.json").exists() and status_of(store).get("progress"), "training", proc=proc
    )
    child = int((work / "child.pid").read_text())

    os.kill(child, signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)

    assert proc.returncode == 75, out
    status = status_of(store)
    assert status["state"] == "PENDING" and states(status)[-2:] == ["TRAINING", "PENDING"]
    message = status["message"]
    assert message.startswith(
        f"attempt 1 interrupted by a signal the runner did not send: the trainer (pid {child}) exited with "
        "code 75 (its own status: stopped: received SIGTERM;"
    ), message
    assert "; the next attempt resumes from ckpt-" in message and "spot" not in message


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_log_that_cannot_be_written_never_blocks_the_child(tmp_path, capfd):
    # /dev/full answers every write with ENOSPC, as train.log on a full disk does. The child writes far more
    # than a pipe holds (64 KiB): if the tee stopped draining, the child would block and never end.
    from spot_runner.supervisor import Supervisor

    script = "import sys\nfor i in range(20000):\n    print('line', i, 'x' * 40)\n"
    sup = Supervisor(
        [sys.executable, "-c", script],
        tmp_path,
        dict(os.environ),
        Path("/dev/full"),
        60,
        5,
        lambda: None,
        tmp_path / "child.pid",
    )
    assert sup.run() == 0
    err = capfd.readouterr().err
    assert "cannot be written (No space left on device)" in err and "Traceback" not in err
    assert sup.tail[-1].startswith("line 19999")


def test_the_child_keeps_the_instance_lock_so_a_rerun_cannot_take_it_while_the_child_lives(tmp_path):
    """The train document holds the instance's flock on a descriptor it names in SPOT_SWEEP_INSTANCE_LOCK_FD.
    The child inherits it: with the runner's own copy closed (the runner died), the lock stays held until the
    child ends, so a re-run of the association leaves the live job alone."""
    import fcntl
    import threading

    from spot_runner.supervisor import INSTANCE_LOCK_FD_ENV, Supervisor

    lock_file = tmp_path / "train.lock"
    fd = os.open(lock_file, os.O_CREAT | os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = tmp_path / "release"
    child = f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.02)\n"
    sup = Supervisor(
        [sys.executable, "-c", child],
        tmp_path,
        {**os.environ, INSTANCE_LOCK_FD_ENV: str(fd)},
        tmp_path / "train.log",
        sync_seconds=0.1,
        grace_seconds=5,
        on_tick=lambda: None,
        pid_file=tmp_path / "child.pid",
    )
    done = threading.Thread(target=sup.run)

    def taken_by_a_rerun() -> bool:
        other = os.open(lock_file, os.O_WRONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(other)

    done.start()
    try:  # whatever fails, the child is let go: it must not outlive the test
        wait_for(lambda: sup.proc is not None and (tmp_path / "child.pid").exists(), "the child started")
        os.close(fd)  # the runner's copy is gone
        assert not taken_by_a_rerun(), "the lock went with the runner although its child still runs"
    finally:
        release.write_text("")
        done.join(timeout=30)
    assert taken_by_a_rerun(), "the lock outlived the job"


def test_a_lock_descriptor_that_is_not_open_is_not_passed_on():
    from spot_runner.supervisor import INSTANCE_LOCK_FD_ENV, inherited_lock_fd

    assert inherited_lock_fd({}) == ()
    assert inherited_lock_fd({INSTANCE_LOCK_FD_ENV: "nine"}) == ()
    assert inherited_lock_fd({INSTANCE_LOCK_FD_ENV: "987"}) == ()
