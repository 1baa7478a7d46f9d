"""One child process (the trainer, torchrun or a user's script) run to its end: output teed into train.log,
a tick every few seconds, a stop (a signal to the runner, a spot notice, a stop request, a lost lease)
forwarded as SIGTERM with its reason written into train.log, SIGKILL when the grace period is over, and
nothing the job started left running afterwards. It also tells how the child ended: the runner's own stop
(noting a grace-period kill), or a signal the runner did not send."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from .runlog import line, log

JOB_TOKEN_ENV = "SPOT_SWEEP_JOB_TOKEN"
# The descriptor on which the train document holds the instance's lock (lib/constructs/train-document.ts
# exports it). The child keeps it open too: should the runner die (the OOM killer, SSM's timeout) while the
# trainer goes on, a re-run of the association still finds the lock held and leaves the live job and its code
# alone.
INSTANCE_LOCK_FD_ENV = "SPOT_SWEEP_INSTANCE_LOCK_FD"
"""Set, to a value unique to each child, in the child's environment, which every process it starts inherits:
a daemon that left the job's session (fork, setsid, fork) still carries it in /proc/<pid>/environ."""


def python_command(nproc: int, *program: str, python: str | None = None) -> list[str]:
    """``python`` (default: this one) running ``program`` (``-m module …`` or ``script.py …``), under
    torchrun with ``nproc`` processes when there is more than one (torchrun takes the program in the same two
    forms)."""
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    )
    return [python or sys.executable, *launcher, *program]


class Supervisor:
    """Runs one child process: output teed to a log file and our stderr, a tick every ``sync_seconds``,
    a stop request (SIGTERM/SIGINT to the runner, a spot notice from the poller thread) forwarded as
    SIGTERM (then SIGKILL after ``grace_seconds``)."""

    def __init__(
        self,
        cmd: list[str],
        cwd: Path,
        env: dict,
        log_path: Path,
        sync_seconds: float,
        grace_seconds: float,
        on_tick,
        pid_file: Path,
    ):
        self.cmd, self.cwd, self.env = cmd, cwd, env
        self.log_path = log_path
        self.sync_seconds = sync_seconds
        self.grace_seconds = grace_seconds
        self.on_tick = on_tick
        self.pid_file = pid_file
        self.proc: subprocess.Popen | None = None
        self.stop_reason: str | None = None
        self.kill_at: float | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self.killed_after_grace = False  # the child did not stop within the grace period and was killed
        self.token = uuid.uuid4().hex
        self._log_lock = threading.Lock()  # the tee thread and a stop's note share train.log

    def request_stop(self, reason: str) -> None:
        """Ask the child to checkpoint and stop; the first reason is the one recorded. Called from a signal
        handler or the spot poller's thread; before the child starts, it is stopped as soon as it does."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.proc is not None and self.proc.poll() is None:
            message = f"{reason}: asking the process to checkpoint and stop (SIGTERM)"
            log(message)
            self._note(message)
            # The whole process group: a script's own workers (and torchrun's) are asked too.
            self._signal_group(signal.SIGTERM)
            if self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace_seconds

    def _note(self, message: str) -> None:
        """A runner line in train.log, between the child's lines: the log then tells why the child stopped."""
        try:
            with self._log_lock, self.log_path.open("ab") as fh:
                fh.write((line(message) + "\n").encode())
        except OSError:
            pass

    def _tee(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fh = self._open_log()
        for raw in iter(self.proc.stdout.readline, b""):
            # The pipe is drained whatever happens to train.log (a full disk): a child blocked on a full
            # pipe would neither train nor stop.
            if fh is not None:
                try:
                    with self._log_lock:
                        fh.write(raw)
                        fh.flush()
                except OSError as e:
                    self._log_unwritable(e)
                    fh = None
            sys.stderr.buffer.write(raw)
            sys.stderr.flush()
            text = raw.decode(errors="replace").rstrip()
            if text:
                self.tail.append(text)
        if fh is not None:
            fh.close()

    def _open_log(self):
        try:
            return self.log_path.open("ab")
        except OSError as e:
            self._log_unwritable(e)
            return None

    def _log_unwritable(self, e: OSError) -> None:
        log(f"warning: {self.log_path} cannot be written ({e.strerror}): the output goes to stderr only")

    def run(self) -> int:
        log("running: " + " ".join(self.cmd))
        # Own session: a Ctrl-C at the terminal reaches only the runner, which forwards one SIGTERM.
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env={**self.env, JOB_TOKEN_ENV: self.token},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=inherited_lock_fd(self.env),
        )
        try:  # for people and tests; the runner itself keeps the pid in memory
            self.pid_file.write_text(str(self.proc.pid))
        except OSError as e:
            log(f"warning: {self.pid_file} not written ({e.strerror}); the child's pid is {self.proc.pid}")
        tee = threading.Thread(target=self._tee, daemon=True, name="tee")
        tee.start()
        if self.stop_reason is not None:
            self.request_stop(self.stop_reason)
        next_tick = time.monotonic() + self.sync_seconds
        while self.proc.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            if self.kill_at is not None and now > self.kill_at:
                message = f"the process did not stop within {self.grace_seconds:g} s of SIGTERM; killing it"
                log(message)
                self._note(message)
                self._signal_group(signal.SIGKILL)
                self.killed_after_grace = True
                self.kill_at = None
            if now >= next_tick:
                self.on_tick()
                next_tick = now + self.sync_seconds
        # No process outlives the job: whatever the child left behind (a worker, a process it put in the
        # background, a daemon in a session of its own) is killed now, before it can hold the GPU or the
        # log pipe.
        left = self._kill_leftovers()
        if left:
            log(f"killed {left} process(es) the job left running")
        tee.join(timeout=10)
        self.pid_file.unlink(missing_ok=True)
        return self.proc.returncode

    def _signal_group(self, signum: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)  # the child leads its own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            self.proc.send_signal(signum)

    def _kill_leftovers(self) -> int:
        """SIGKILL every process still in the child's session (the child started it, so the session id is
        its pid) or carrying this child's JOB_TOKEN_ENV in its environment; the count killed. A process
        that started a session of its own escapes the first test, not the second; one that cleared its
        environment (exec with a fresh one) escapes both. Linux reads /proc; elsewhere the child's process
        group is killed."""
        assert self.proc is not None
        if not Path("/proc").is_dir():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
                return 1
            except (ProcessLookupError, PermissionError):
                return 0
        killed: set[int] = set()
        for _ in range(5):  # a process may fork as it dies: look again until a look finds no one new
            found = self._leftovers() - killed
            if not found:
                break
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except (ProcessLookupError, PermissionError):
                    continue
        return len(killed)

    def _leftovers(self) -> set[int]:
        """The live processes of the job: in the child's session or marked with its token; not the runner."""
        assert self.proc is not None
        sid, me = self.proc.pid, os.getpid()
        mark = f"{JOB_TOKEN_ENV}={self.token}".encode()
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                # Field 6 of /proc/<pid>/stat is the session id; the name (field 2) may hold spaces, so
                # split after its closing parenthesis. /proc/<pid>/environ: the environment it was started
                # with, NUL-separated. @see proc(5)
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] == "Z":  # a zombie is dead already
                    continue
                if int(fields[3]) == sid or mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile, or not ours to read
        return found

    def kill_note(self) -> str:
        """`` (the process (pid N) did not stop within G s of SIGTERM; killed)`` after a grace-period kill."""
        if not self.killed_after_grace or self.proc is None:
            return ""
        grace = f"{self.grace_seconds:g} s"
        return f" (the process (pid {self.proc.pid}) did not stop within {grace} of SIGTERM; killed)"

    def interruption(self, rc: int, name: str, detail: str | None = None) -> str:
        """Why an interrupted child stopped, worded to follow "interrupted by": the runner's own stop reason
        (``kill_note`` tells whether it had to be killed), or, when the runner asked for no stop yet the
        child exited 75 (interrupted, checkpoint saved), a signal the runner did not send (a user's kill, a
        shutdown script), never taken for a spot notice; a child killed by such a signal fails (``ending``).
        ``name``: "the trainer", "the script x.py"; ``detail``: what the child said of its stop (the
        trainer's own status message)."""
        if self.stop_reason is not None:
            return self.stop_reason
        pid = self.proc.pid if self.proc is not None else "?"
        said = f" (its own status: {detail})" if detail else ""
        return f"a signal the runner did not send: {name} (pid {pid}) exited with code {rc}{said}"

    def ending(self, rc: int) -> str:
        """How the process ended, with its last log lines: the cause in a FAILED message. A signal the runner
        did not send is said to be one (the kernel's OOM killer sends SIGKILL, a user or a script SIGTERM)."""
        pid = f"(pid {self.proc.pid}) " if self.proc is not None else ""
        if rc >= 0:
            how = f"exited with code {rc}"
        else:
            how = f"was killed by signal {-rc} ({_signal_name(-rc)})"
            if self.stop_reason is None:
                how += ", a signal the runner did not send"
        return f"{pid}{how}. Last log lines: {' | '.join(list(self.tail)[-3:])}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def inherited_lock_fd(env: dict[str, str]) -> tuple[int, ...]:
    """The instance lock's descriptor when the environment names one this process holds open; else none."""
    raw = env.get(INSTANCE_LOCK_FD_ENV, "")
    if not raw.isdigit():
        return ()
    fd = int(raw)
    try:
        os.fstat(fd)
    except OSError:
        return ()
    return (fd,)
