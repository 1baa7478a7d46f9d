"""Helpers of the fault-injection suite: the profile every faulted run shares, the runner as a process in its
own session (so that a test can kill -9 it like a lost instance), views of a store (a directory or an S3
prefix) to compare before and after, and small checks of the promise.

Each helper is small on purpose: a fault test must say plainly what it breaks and what it expects.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conftest import without_timing
from jobkit import TRAINING, DrainedProcess, S3Bucket, child_env, job_doc

from two_tower import synth

SEED = int(os.environ.get("SPOT_SWEEP_FAULT_SEED", "20261201"))
"""The suite's seed (every random kill point and damaged byte derives from it); env SPOT_SWEEP_FAULT_SEED
replays another one. Printed by the suite's session fixture."""

SWEEP = "faults"

DATA = dict(queries=1000, docs=2000, dim=8, latent=4, candidates=6, positives=2, seed=3)
"""~200 KB of data: about 1.2 s of training on one core, long enough to be killed or cut off in the middle.
A smaller dataset saves little: most of a run's ~4 s of CPU is Python and torch starting."""

TRAIN = {"folds": 2, "epochs": 2, "batchSize": 8, "hiddenDim": 32, "checkpointMinutes": 0.003}
"""2 folds of 2 epochs; a checkpoint every 0.18 s besides those at each epoch's end: about 10 per run."""

RUNNER_ARGS = ("--sync-seconds", "0.2", "--grace-seconds", "20")
"""A sync every 0.2 s (so that an outage of a second spans several); the grace only bounds a stuck trainer."""

LEASE_TTL = {"SPOT_SWEEP_LEASE_TTL_SECONDS": "3"}
"""The store lease's ttl for every runner here (spot_runner/lease.py). By default it is 90 s: after a
kill -9 the next runner watches the dead holder's lease that long before it takes over, longer than this
suite's whole budget. 3 s still leaves a live holder (renewing every second) far from losing it on a
loaded machine."""

RUN_TIMEOUT_S = 90.0
"""Longest wait for one runner: a run takes ~5 s alone on a core, ~25 s on a machine loaded 6 times over.
A runner still going by then is reported as hung (and killed), never waited on further."""

MODULE_TIMEOUT = 300
"""pytest-timeout for a module whose scenarios run together in a module fixture: the first test's setup
runs them all (~20 s on two idle cores), so the project's 120 s per test is too tight on a loaded one."""

CAUSES = ("no space left", "read-only file system", "disk is full", "disk full", "read-only")


def rng(*names: object) -> random.Random:
    """A Random for one scenario, seeded by SEED and the scenario's name (str seeds are stable across
    runs and processes, unlike hash())."""
    return random.Random(":".join(map(str, (SEED, *names))))


def make_data(directory: Path) -> Path:
    return synth.generate(directory, **DATA)


def fault_job(store_uri: str, data: str, config: str, train: dict | None = None, **fields) -> dict:
    """job.json for one scenario: the shared TRAIN settings (or ``train``), so every result must equal the
    reference run's with the same settings."""
    doc = job_doc(store_uri, data, sweep=SWEEP, config=config, **fields)
    doc["train"].update(train or TRAIN)
    return doc


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def metrics(results: dict) -> dict:
    """What must be identical to the reference: results.json minus timing and minus the ``job`` section
    (attempts and interruptions differ by design), the model by its weights' digest alone."""
    out = without_timing(results)
    out.pop("job", None)
    if out.get("model"):  # the same weights; the key names the config, which differs from the reference's
        out["model"] = {"sha256": out["model"]["sha256"]}
    return out


# --------------------------------------------------------------------------------------------
# stores


class StoreView:
    """Read-only view of one config's store (a directory or an S3 prefix) as {key: bytes}, for before/after
    comparisons made behind the runner's back."""

    uri: str

    def files(self) -> dict[str, bytes]:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.files() if k.startswith(prefix))

    def get(self, key: str) -> bytes | None:
        return self.files().get(key)

    def json(self, key: str) -> dict | None:
        raw = self.get(key)
        return None if raw is None else json.loads(raw)

    def log(self) -> str:
        return (self.get("train.log") or b"").decode(errors="replace")


class DirView(StoreView):
    def __init__(self, root: Path):
        self.root = root
        self.uri = root.as_uri() + "/"

    def files(self) -> dict[str, bytes]:
        if not self.root.is_dir():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.endswith(".part")
        }

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class S3View(StoreView):
    def __init__(self, bucket: S3Bucket, prefix: str):
        self.bucket, self.prefix = bucket, prefix
        self.uri = bucket.uri(prefix)

    def files(self) -> dict[str, bytes]:
        return {k[len(self.prefix) :]: self.bucket.get(k) for k in self.bucket.keys(self.prefix)}

    def keys(self, prefix: str = "") -> list[str]:
        return [k[len(self.prefix) :] for k in self.bucket.keys(self.prefix + prefix)]

    def get(self, key: str) -> bytes | None:
        return self.bucket.get(self.prefix + key)

    def put(self, key: str, data: bytes) -> None:
        self.bucket.put(self.prefix + key, data)


def local_store(root: Path, config: str, data: str, **fields) -> tuple[str, DirView]:
    """A file:// store ``root/store`` holding job.json (``fields``: fault_job's): the job's URI and a view
    of the store."""
    store = root / "store"
    store.mkdir(parents=True, exist_ok=True)
    (store / "job.json").write_text(json.dumps(fault_job(store.as_uri() + "/", data, config, **fields)))
    return str(store / "job.json"), DirView(store)


def s3_store(bucket: S3Bucket, config: str, data: str, **fields) -> tuple[str, S3View]:
    """job.json under sweeps/faults/<config>/ in the bucket: the job's URI and a view of the store."""
    prefix = f"sweeps/{SWEEP}/{config}/"
    view = S3View(bucket, prefix)
    view.put("job.json", json.dumps(fault_job(view.uri, data, config, **fields)).encode())
    return bucket.uri(prefix + "job.json"), view


def seed_store(view: StoreView, snapshot: dict[str, bytes], keep=lambda key: True) -> dict[str, bytes]:
    """Put an interrupted attempt's store (``snapshot``: status, train.log, checkpoints) under this job.

    The snapshot's status.json names its own job.json's digest; this store's job.json differs (another
    store URI and config name, same settings and data), so the digest is set to this job's: otherwise the
    runner would take the job for a changed one and start over. Returns what the store holds after."""
    job = view.get("job.json")
    for key, data in snapshot.items():
        if key == "job.json" or not keep(key):
            continue
        if key == "status.json":
            status = json.loads(data)
            status["jobDigest"] = digest(job)
            data = json.dumps(status, indent=2).encode()
        view.put(key, data)
    return view.files()


def checkpoint_names(files: dict[str, bytes]) -> list[str]:
    return sorted(k.split("/")[-1] for k in files if k.startswith("checkpoints/") and k.endswith(".pt"))


def kept_or_in_history(before: dict[str, bytes], after: dict[str, bytes], keys) -> list[str]:
    """The keys of ``before`` that are gone: neither byte-identical at their key nor under history/."""
    history = set(v for k, v in after.items() if k.startswith("history/"))
    return [k for k in keys if after.get(k) != before[k] and before[k] not in history]


def attempt_headers(log: str) -> list[int]:
    """The attempt numbers of the "=== attempt N on …" headers of train.log, in order."""
    return [int(line.split()[2]) for line in log.splitlines() if line.startswith("=== attempt ")]


def states_with_attempts(status: dict) -> list[tuple[str, int]]:
    return [(h["state"], h["attempt"]) for h in status.get("history", [])]


def has_traceback(output: str) -> bool:
    return "Traceback (most recent call last)" in output


# --------------------------------------------------------------------------------------------
# processes


@dataclass
class Run:
    """One runner process, in its own session like an instance's: a kill -9 of its process group is the
    runner's death; the trainer it starts leads a session of its own (spot_runner/supervisor.py), so the
    death of the whole instance kills that one as well (``machine_death``)."""

    workdir: Path
    proc: DrainedProcess
    started: float
    rc: int | None = None
    ended: float | None = None  # monotonic time of its exit, noted by a thread (waits may come later)
    hung: bool = False
    killed: str | None = None  # "machine", "runner", "trainer" once a test killed something
    trainer_pids: list[int] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.proc.output()

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def __str__(self) -> str:
        return f"exit {'hung' if self.hung else self.rc} after {self.seconds:.1f} s"

    __repr__ = __str__  # pytest prints it in assertion messages: the whole output would drown them

    def alive(self) -> bool:
        return self.proc.poll() is None

    def trainer_pid(self) -> int | None:
        """The pid in workdir/child.pid when it is this run's live trainer (a killed run's stale file names
        a dead process, or one of an earlier run)."""
        try:
            pid = int((self.workdir / "child.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        if not _runs_in(pid, self.workdir) or _is_zombie(pid):
            return None
        if pid not in self.trainer_pids:
            self.trainer_pids.append(pid)
        return pid

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int | None:
        """The exit code; None when it hung (then it and its trainer are killed and ``hung`` is set)."""
        try:
            self.rc = self.proc.wait(timeout=max(timeout - (time.monotonic() - self.started), 1))
        except subprocess.TimeoutExpired:
            self.hung = True
            self.machine_death()
            kill_strays(self.workdir)
            self.rc = None
        self.proc.communicate(timeout=10)  # the output reader has everything
        return self.rc

    @property
    def seconds(self) -> float:
        """How long it ran (so far, while it runs)."""
        return (self.ended or time.monotonic()) - self.started

    def machine_death(self) -> None:
        """kill -9 of everything the instance ran for the job: the runner's group and the trainer's."""
        pid = self.trainer_pid()
        _killpg(self.proc.pid)
        if pid is not None:
            _killpg(pid)
            _gone(pid)
        self.killed = self.killed or "machine"

    def kill_runner_only(self) -> None:
        """kill -9 of the runner's process group: the trainer, in its own session, is orphaned."""
        _killpg(self.proc.pid)
        self.killed = "runner"

    def kill_trainer_only(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        _gone(pid)
        self.killed = "trainer"


def start(job_uri: str, workdir: Path | None, *args: str, env: dict | None = None) -> Run:
    """``python -m spot_runner.job --job URI [--workdir W] RUNNER_ARGS args`` in a session of its own."""
    cmd = [sys.executable, "-m", "spot_runner.job", "--job", job_uri]
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    proc = DrainedProcess(
        [*cmd, *RUNNER_ARGS, *args],
        env=child_env({**LEASE_TTL, **(env or {})}),
        cwd=TRAINING,
        start_new_session=True,
    )
    started = Run(Path(workdir) if workdir else Path("/nonexistent"), proc, time.monotonic())

    def note_exit() -> None:
        proc.wait()
        started.ended = time.monotonic()

    threading.Thread(target=note_exit, daemon=True, name="exit-time").start()
    return started


def run(job_uri: str, workdir: Path | None, *args: str, env: dict | None = None) -> Run:
    """Start the runner and wait for it to end (bounded by RUN_TIMEOUT_S)."""
    started = start(job_uri, workdir, *args, env=env)
    started.wait()
    return started


def until(predicate, timeout: float, step: float = 0.05):
    """Poll ``predicate`` until truthy (returned) or ``timeout`` seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def wait_trainer_started(run_: Run, timeout: float = 30) -> tuple[int, int] | None:
    """(trainer pid, train.log size then) once this run's trainer is up; None if the run ended first. The
    log offset lets a test count only the lines this trainer writes (it imports torch first: >1 s, so it
    has written none yet)."""
    pid = until(lambda: run_.trainer_pid() or (-1 if not run_.alive() else 0), timeout)
    if not pid or pid < 0:
        return None
    log = run_.workdir / "train.log"
    return pid, log.stat().st_size if log.exists() else 0


def checkpoints_since(run_: Run, offset: int) -> int:
    """Checkpoint lines the trainer printed into the local train.log after ``offset``."""
    try:
        with (run_.workdir / "train.log").open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace").count("checkpoint: ckpt-")
    except OSError:
        return 0


def kill_point(run_: Run, r: random.Random, what: str, choices=(0, 1, 2)) -> str:
    """Wait for a seeded-random point of this run's training and say which: one of ``choices`` checkpoint
    lines after the trainer started (0: while it loads its data), plus a random fraction of a checkpoint
    interval. Returns "" when the run ended before that point (then nothing is killed)."""
    checkpoints, delay = r.choice(choices), r.uniform(0.0, 0.2)
    started = wait_trainer_started(run_)
    if started is None:
        return ""
    _, offset = started
    if checkpoints == 0:
        delay += r.uniform(0.3, 1.2)
    elif not until(lambda: checkpoints_since(run_, offset) >= checkpoints or not run_.alive(), 30):
        return ""
    time.sleep(delay)
    return f"{what} {delay:.2f} s after checkpoint line {checkpoints} of the attempt" if run_.alive() else ""


def _runs_in(pid: int, workdir: Path) -> bool:
    """Whether process ``pid`` is one of ours for this workdir (its command line names the workdir): pids
    are reused, and a test must never signal a stranger."""
    try:
        return str(workdir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _gone(pid: int, timeout: float = 10) -> None:
    until(lambda: _is_zombie(pid), timeout)


def strays(workdir: Path) -> list[int]:
    """Live processes whose command line names ``workdir`` (a trainer or runner left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if _runs_in(pid, workdir) and not _is_zombie(pid):
                found.append(pid)
    return found


def kill_strays(*workdirs: Path) -> list[int]:
    """SIGKILL what ``strays`` finds (each by pid): no test leaves a process running."""
    killed = []
    for workdir in workdirs:
        for pid in strays(workdir):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def in_parallel(scenarios: dict[str, object], workers: int = 2) -> dict[str, object]:
    """Run independent scenarios two at a time (each runner is one busy core; CI has two): {name: result or
    the exception it raised}. The tests then assert on each one, so each failure is reported on its own."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(fn) for name, fn in scenarios.items()}
    out = {}
    for name, future in futures.items():
        error = future.exception()
        out[name] = error if error is not None else future.result()
    return out


def outcome(results: dict[str, object], name: str):
    """One scenario's result from ``in_parallel``; its exception re-raised in the test that asks for it."""
    value = results[name]
    if isinstance(value, BaseException):
        raise value
    return value


class Problems:
    """Every broken part of a promise at once (not just the first): a fault test's failure then tells the
    whole observed behaviour, and whether the code or the test is wrong."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, ok: object, problem: str) -> bool:
        if not ok:
            self.found.append(problem)
        return bool(ok)

    def assert_none(self, context: object = "") -> None:
        assert not self.found, "\n".join(f"- {p}" for p in self.found) + (f"\n{context}" if context else "")
