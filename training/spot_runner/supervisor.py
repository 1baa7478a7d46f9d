"""One child process (the trainer, torchrun or a user's script) run to its end: output teed into train.log,
a tick every few seconds, a stop (a signal to the runner, a spot notice) forwarded as SIGTERM with its
reason written into train.log, SIGKILL when the grace period is over."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .runlog import line, log


def python_command(nproc: int, *program: str) -> list[str]:
    """This Python running ``program`` (``-m module …`` or ``script.py …``), under torchrun with ``nproc``
    processes when there is more than one (torchrun takes the program in the same two forms)."""
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    )
    return [sys.executable, *launcher, *program]


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
        with self.log_path.open("ab") as fh:
            for raw in iter(self.proc.stdout.readline, b""):
                with self._log_lock:
                    fh.write(raw)
                    fh.flush()
                sys.stderr.buffer.write(raw)
                sys.stderr.flush()
                text = raw.decode(errors="replace").rstrip()
                if text:
                    self.tail.append(text)

    def run(self) -> int:
        log("running: " + " ".join(self.cmd))
        # Own session: a Ctrl-C at the terminal reaches only the runner, which forwards one SIGTERM.
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(str(self.proc.pid))
        tee = threading.Thread(target=self._tee, daemon=True, name="tee")
        tee.start()
        if self.stop_reason is not None:
            self.request_stop(self.stop_reason)
        next_tick = time.monotonic() + self.sync_seconds
        while self.proc.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            if self.kill_at is not None and now > self.kill_at:
                log(f"the process did not stop within {self.grace_seconds:.0f} s of SIGTERM; killing it")
                self._signal_group(signal.SIGKILL)
                self.kill_at = None
            if now >= next_tick:
                self.on_tick()
                next_tick = now + self.sync_seconds
        # No process outlives the job: whatever the child left behind in its session (a worker, a process
        # it put in the background) is killed now, before it can hold the GPU or the log pipe.
        left = self._kill_session()
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

    def _kill_session(self) -> int:
        """SIGKILL every process still in the child's session (the child started it, so the session id is
        its pid), including those in other process groups of it; the count killed. Linux reads /proc;
        elsewhere the child's process group is killed."""
        assert self.proc is not None
        sid, killed = self.proc.pid, 0
        proc_dir = Path("/proc")
        if not proc_dir.is_dir():
            try:
                os.killpg(sid, signal.SIGKILL)
                return 1
            except (ProcessLookupError, PermissionError):
                return 0
        for entry in proc_dir.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # Field 6 of /proc/<pid>/stat is the session id; the name (field 2) may hold spaces, so
                # split after its closing parenthesis. @see proc(5)
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":  # a zombie is dead already
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile, or not ours to read
        return killed

    def ending(self, rc: int) -> str:
        """How the process ended, with its last log lines: the cause in a FAILED message."""
        how = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        return f"{how}. Last log lines: {' | '.join(list(self.tail)[-3:])}"
