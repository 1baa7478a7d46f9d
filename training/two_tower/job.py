"""The job runner: one config of a sweep, from job.json to results in the store.

    python -m two_tower.job --job URI [--workdir DIR] [--sync-seconds N] [--grace-seconds N]

URI is ``s3://bucket/sweeps/<sweep>/<config>/job.json``, ``file:///…/job.json`` or a path. The
runner keeps ``<store>/status.json`` current (PENDING → BOOTSTRAPPING → TRAINING → SUCCEEDED |
FAILED | STOPPED), fetches the data and the checkpoints the store holds, runs the trainer
(``python -m two_tower.train``; torchrun with one process per GPU when CUDA has them) or the
user's patched script, tees its output into ``train.log`` and, every ``--sync-seconds``, uploads
the log, each new checkpoint (removing those the trainer dropped) and the progress.

Exit codes (the bootstrap relies on them): 0 success (or the job had already succeeded: nothing
is retrained); 2 bad job file, data, script patch or trainer input (FAILED, one message, no
traceback); 75 interrupted by SIGTERM, SIGINT or a spot notice (checkpoint uploaded; status
PENDING so a replacement resumes, or STOPPED when stopped on purpose); 1 anything else (FAILED).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from .storage import StorageError, Store, is_s3, local_path, open_store, read_object, split_object_uri
from .user_script import Patch, ScriptError, ScriptSpec, apply_patches, collect_results, command, fetch_code

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 75

JOB_VERSION = 1
CHECKPOINTS = "checkpoints/"
FETCH_MANIFEST = ".spot-sweep-fetch.json"
PROGRESS_KEYS = (
    "fold",
    "folds",
    "epoch",
    "epochs",
    "step",
    "progress",
    "examplesPerSecond",
    "etaSeconds",
    "loss",
)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class JobError(Exception):
    """A failure the user can fix, with the exit code it maps to."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.message = message
        self.code = code


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived before the trainer was started."""


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(message: str) -> None:
    print(f"[job {utcnow()}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# job.json


def _problem(problems: list[str], field: str, rule: str, value: object) -> None:
    problems.append(f"`{field}` {rule} (got {json.dumps(value)})")


def parse_job(data: bytes, uri: str) -> dict:
    """Validate job.json (version 1, see .ci/CONTRACTS.md); collect every problem and raise once."""
    fix = "Fix: regenerate the file from the sweep spec (`npx spot-sweep local …` or `npx cdk deploy`)."
    try:
        job = json.loads(data)
    except UnicodeDecodeError as e:
        raise JobError(f"Job file {uri} is not UTF-8 text ({e.reason}). {fix}") from e
    except json.JSONDecodeError as e:
        raise JobError(
            f"Job file {uri} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}. {fix}"
        ) from e
    if not isinstance(job, dict):
        raise JobError(f"Job file {uri} must hold a JSON object, not {type(job).__name__}. {fix}")
    problems: list[str] = []
    if job.get("version") != JOB_VERSION:
        _problem(
            problems,
            "version",
            f"must be {JOB_VERSION}: this runner reads job files of version {JOB_VERSION}",
            job.get("version"),
        )
    for key in ("sweep", "config", "store"):
        if not isinstance(job.get(key), str) or not job.get(key):
            _problem(problems, key, "must be a non-empty string", job.get(key))
    store = job.get("store")
    if isinstance(store, str) and store and not (is_s3(store) or store.startswith(("file:///", "/"))):
        _problem(
            problems, "store", "must be s3://bucket/prefix/, file:///absolute/dir/ or an absolute path", store
        )
    gpus = job.get("gpus")
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        _problem(problems, "gpus", "must be an integer >= 1", gpus)
    examples = job.get("examples")
    if examples is not None and (not isinstance(examples, int) or isinstance(examples, bool) or examples < 1):
        _problem(problems, "examples", "must be an integer >= 1 or null (all)", examples)
    script = job.get("script")
    data_uri = job.get("data")
    if script is None:
        if not isinstance(data_uri, str) or not data_uri:
            _problem(
                problems,
                "data",
                "must name the dataset (s3://bucket/prefix/ or an absolute directory)",
                data_uri,
            )
        if not isinstance(job.get("train"), dict):
            _problem(problems, "train", "must be an object with the trainer settings", job.get("train"))
    else:
        if data_uri is not None and (not isinstance(data_uri, str) or not data_uri):
            _problem(problems, "data", "must be a location string or null", data_uri)
        _check_script(script, problems)
    if problems:
        raise JobError(f"Job file {uri} has {len(problems)} problem(s): " + "; ".join(problems) + f". {fix}")
    return job


def _check_script(script: object, problems: list[str]) -> None:
    if not isinstance(script, dict):
        _problem(problems, "script", "must be an object or null", script)
        return
    for key in ("code", "entrypoint", "results"):
        if not isinstance(script.get(key), str) or not script.get(key):
            _problem(problems, f"script.{key}", "must be a non-empty string", script.get(key))
    args = script.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        _problem(problems, "script.args", "must be a list of strings", args)
    patches = script.get("patches", [])
    if not isinstance(patches, list):
        _problem(problems, "script.patches", "must be a list", patches)
        return
    for i, p in enumerate(patches):
        if not isinstance(p, dict):
            _problem(problems, f"script.patches[{i}]", "must be an object with file, find, replace", p)
            continue
        for key in ("file", "find"):
            if not isinstance(p.get(key), str) or not p.get(key):
                _problem(problems, f"script.patches[{i}].{key}", "must be a non-empty string", p.get(key))
        if not isinstance(p.get("replace"), str):
            _problem(problems, f"script.patches[{i}].replace", "must be a string", p.get("replace"))


def script_spec(job: dict) -> ScriptSpec:
    s = job["script"]
    return ScriptSpec(
        code=s["code"],
        entrypoint=s["entrypoint"],
        args=tuple(s.get("args", [])),
        patches=tuple(Patch(p["file"], p["find"], p["replace"]) for p in s.get("patches", [])),
        results=s["results"],
    )


def fallback_store(job_uri: str) -> str | None:
    """Where a job file that cannot be read lives: its folder, when it is named job.json (the
    CDK app and local mode write it there), so its FAILED status lands where users look."""
    directory, name = split_object_uri(job_uri)
    return directory if name == "job.json" else None


# --------------------------------------------------------------------------------------------
# instance metadata (IMDSv2)

# IMDSv2: PUT /latest/api/token with header X-aws-ec2-metadata-token-ttl-seconds, then send the token in
# X-aws-ec2-metadata-token. instance-life-cycle is "spot" or "on-demand"; spot/instance-action appears
# only when an interruption is scheduled.
# @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
# @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html


def imds_endpoint() -> str:
    return os.environ.get("SPOT_SWEEP_IMDS_ENDPOINT", "http://169.254.169.254").rstrip("/")


def imds_token(timeout: float = 1.0) -> str | None:
    request = urllib.request.Request(
        imds_endpoint() + "/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode()
    except (OSError, urllib.error.URLError):
        return None


def imds_get(path: str, token: str, timeout: float = 2.0) -> str | None:
    request = urllib.request.Request(
        imds_endpoint() + "/latest/meta-data/" + path, headers={"X-aws-ec2-metadata-token": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode().strip()
    except (OSError, urllib.error.URLError):
        return None


def instance_facts() -> dict:
    """instanceType and market from IMDS, or "local" for both off EC2."""
    token = imds_token()
    if token is None:
        return {"instanceType": "local", "market": "local"}
    return {
        "instanceType": imds_get("instance-type", token) or "unknown",
        "market": imds_get("instance-life-cycle", token) or "unknown",
    }


class SpotNoticeWatcher(threading.Thread):
    """Polls spot/instance-action every few seconds (AWS recommends 5 s) and calls back once.

    Used in script mode only: the two_tower trainer watches for the notice itself."""

    def __init__(self, on_notice):
        super().__init__(daemon=True, name="spot-notice")
        self.on_notice = on_notice
        self.interval = float(os.environ.get("SPOT_SWEEP_SPOT_POLL_SECONDS", "5"))
        self.stopped = threading.Event()

    def run(self) -> None:
        token = imds_token()
        if token is None:
            return
        while not self.stopped.wait(self.interval):
            body = imds_get("spot/instance-action", token)
            if body:
                self.on_notice(body)
                return

    def stop(self) -> None:
        self.stopped.set()


# --------------------------------------------------------------------------------------------
# status.json


class StatusBoard:
    """The store's status.json: the runner's view of the job, merged with the trainer's progress."""

    def __init__(self, store: Store, doc: dict):
        self.store = store
        self.doc = doc

    @classmethod
    def load(cls, store: Store) -> StatusBoard:
        raw = store.get_bytes("status.json")
        doc: dict = {}
        if raw:
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError:
                log(f"warning: {store.describe('status.json')} is not valid JSON; starting a fresh status")
            if not isinstance(doc, dict):
                doc = {}
        return cls(store, doc)

    @property
    def state(self) -> str | None:
        return self.doc.get("state")

    def set(self, state: str, **fields: object) -> None:
        """Change state (appending to ``history``); a message is kept only when given with the state."""
        changed = state != self.doc.get("state")
        if "message" not in fields:
            self.doc.pop("message", None)
        self.doc.update(fields, state=state)
        if changed:
            entry = {"state": state, "at": utcnow(), "attempt": self.doc.get("attempts", 0)}
            self.doc.setdefault("history", []).append(entry)
        self.write()

    def progress(self, trainer_status: dict) -> None:
        changed = False
        for key in PROGRESS_KEYS:
            if key in trainer_status and self.doc.get(key) != trainer_status[key]:
                self.doc[key] = trainer_status[key]
                changed = True
        if changed:
            self.write()

    def write(self) -> None:
        self.doc["updatedAt"] = utcnow()
        try:
            self.store.put_bytes("status.json", json.dumps(self.doc, indent=2).encode())
        except StorageError as e:
            log(f"warning: status not written: {e}")


def record_failure(store_uri: str | None, message: str, endpoint_url: str | None) -> None:
    """Best effort FAILED status for failures before (or outside) a normal run."""
    if not store_uri:
        return
    try:
        board = StatusBoard.load(open_store(store_uri, endpoint_url))
        board.set("FAILED", message=message)
    except StorageError as e:
        log(f"warning: could not record FAILED in {store_uri}: {e}")


# --------------------------------------------------------------------------------------------
# data and checkpoints


def fetch_data(data_uri: str, dest: Path, endpoint_url: str | None) -> Path:
    """The dataset on local disk. A local directory is used in place. An S3 prefix is copied into
    ``dest``, skipping files already there with the same content: a manifest beside the data
    records each file's S3 ETag and size and the local file's size and mtime at download; a file
    is fetched again when any of them differ."""
    if not is_s3(data_uri):
        path = local_path(data_uri)
        if not path.is_dir() or not any(path.iterdir()):
            raise JobError(
                f"Data directory {path} (job field `data`) does not exist or is empty. "
                "Fix: create the dataset there or point `data` at it."
            )
        return path
    try:
        store = open_store(data_uri, endpoint_url)
        objects = [o for o in store.list() if not o.key.endswith("/")]
    except StorageError as e:
        raise JobError(
            f"Data {data_uri} (job field `data`) is unreachable: {e}. "
            "Fix: upload the dataset there or correct `data`."
        ) from e
    if not objects:
        raise JobError(
            f"Data {data_uri} (job field `data`) holds no files. "
            "Fix: upload the dataset there or correct `data`."
        )
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / FETCH_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        manifest = {}
    fetched = skipped = 0
    nbytes = 0
    for obj in objects:
        local = dest / obj.key
        seen = manifest.get(obj.key, {})
        if local.is_file() and seen.get("etag") == obj.etag and seen.get("size") == obj.size:
            st = local.stat()
            if st.st_size == obj.size and seen.get("mtimeNs") == st.st_mtime_ns:
                skipped += 1
                continue
        try:
            store.download(obj.key, local)
        except StorageError as e:
            raise JobError(
                f"Data file {store.describe(obj.key)} could not be fetched: {e}. Fix: check the dataset."
            ) from e
        st = local.stat()
        manifest[obj.key] = {"etag": obj.etag, "size": obj.size, "mtimeNs": st.st_mtime_ns}
        manifest_path.write_text(json.dumps(manifest, indent=1))
        fetched += 1
        nbytes += obj.size
    log(
        f"data: {fetched} file(s) fetched ({nbytes / 1e6:.1f} MB), {skipped} already present, from {data_uri}"
    )
    return dest


def is_complete_checkpoint(path: Path) -> bool:
    """The trainer gives a checkpoint its final name only when complete; temporaries start with a dot or
    end in .tmp/.part/.partial."""
    name = path.name
    return path.is_file() and not name.startswith(".") and not name.endswith((".tmp", ".part", ".partial"))


class CheckpointSync:
    """Mirrors OUT/checkpoints/ into <store>/checkpoints/: new files up, dropped files removed from the
    store once a newer one is there, so the store always holds a complete checkpoint."""

    def __init__(self, store: Store, local_dir: Path):
        self.store = store
        self.local_dir = local_dir
        self.uploaded: dict[str, tuple[int, int]] = {}
        self.uploads = 0

    def fetch(self) -> list[str]:
        """Download the checkpoints the store holds (at most the newest two) that are not here yet."""
        self.local_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for obj in self.store.list(CHECKPOINTS):
            name = obj.key[len(CHECKPOINTS) :]
            if "/" in name or name.startswith("."):
                continue
            local = self.local_dir / name
            if not (local.is_file() and local.stat().st_size == obj.size):
                self.store.download(obj.key, local)
            st = local.stat()
            self.uploaded[name] = (st.st_size, st.st_mtime_ns)
            names.append(name)
        return names

    def sync(self) -> None:
        if not self.local_dir.is_dir():
            return
        present = {}
        found = []
        for path in self.local_dir.iterdir():
            try:  # the trainer may drop an old checkpoint at any moment
                if is_complete_checkpoint(path):
                    found.append((path.stat(), path))
            except FileNotFoundError:
                continue
        for st, path in sorted(found, key=lambda item: item[0].st_mtime_ns):
            present[path.name] = (st.st_size, st.st_mtime_ns)
            if self.uploaded.get(path.name) == present[path.name]:
                continue
            try:
                self.store.upload(path, CHECKPOINTS + path.name)
            except StorageError as e:
                if path.exists():
                    log(f"warning: checkpoint {path.name} not uploaded: {e}")
                present.pop(path.name, None)
                continue
            self.uploaded[path.name] = present[path.name]
            self.uploads += 1
            log(f"checkpoint uploaded: {self.store.describe(CHECKPOINTS + path.name)}")
        if not present:
            return
        for name in [n for n in self.uploaded if n not in present]:
            try:
                self.store.delete(CHECKPOINTS + name)
                del self.uploaded[name]
            except StorageError as e:
                log(f"warning: old checkpoint {name} not removed: {e}")


# --------------------------------------------------------------------------------------------
# running the trainer or script


class Supervisor:
    """Runs one child process: output teed to a log file and our stderr, a tick every ``sync_seconds``,
    SIGTERM/SIGINT forwarded as SIGTERM (then SIGKILL after ``grace_seconds``)."""

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

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.proc is not None and self.proc.poll() is None:
            log(f"{reason}: asking the process to checkpoint and stop (SIGTERM)")
            self.proc.send_signal(signal.SIGTERM)
            if self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace_seconds

    def _tee(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("ab") as fh:
            for line in iter(self.proc.stdout.readline, b""):
                fh.write(line)
                fh.flush()
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
                text = line.decode(errors="replace").rstrip()
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
                self.proc.kill()
                self.kill_at = None
            if now >= next_tick:
                self.on_tick()
                next_tick = now + self.sync_seconds
        tee.join(timeout=10)
        self.pid_file.unlink(missing_ok=True)
        return self.proc.returncode


class Runner:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.endpoint = args.endpoint_url
        self.supervisor: Supervisor | None = None
        self.pending_signal: str | None = None

    # signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        reason = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        if self.supervisor is not None:
            self.supervisor.request_stop(reason)
        elif self.pending_signal is None:
            self.pending_signal = reason
            raise Interrupted(reason)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # main flow -------------------------------------------------------------------------------

    def run(self) -> int:
        job_uri = self.args.job
        try:
            raw = read_object(job_uri, self.endpoint)
        except StorageError as e:
            raise JobError(
                f"Job file {job_uri} cannot be read: {e}. Fix: pass --job with the job.json the sweep wrote."
            ) from e
        job = parse_job(raw, job_uri)
        self.job = job
        self.store = open_store(job["store"], self.endpoint)
        board = StatusBoard.load(self.store)
        self.board = board
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        changed = board.doc.get("jobDigest") not in (None, digest)
        if board.state == "SUCCEEDED" and not changed and self.store.get_bytes("results.json") is not None:
            log(f"{self.store.describe('results.json')} exists and the job SUCCEEDED: nothing to do")
            return EXIT_OK
        work = self.workdir()
        self.work = work
        if changed:
            self.start_over(work)
        if board.state is None:
            board.set("PENDING", sweep=job["sweep"], config=job["config"], attempts=0, interruptions=0)
        attempts = int(board.doc.get("attempts") or 0) + 1
        board.doc.setdefault("interruptions", 0)
        facts = instance_facts()
        self.facts = facts
        board.set(
            "BOOTSTRAPPING",
            sweep=job["sweep"],
            config=job["config"],
            jobDigest=digest,
            attempts=attempts,
            instanceType=facts["instanceType"],
            market=facts["market"],
            startedAt=utcnow(),
            mode="script" if job.get("script") else "train",
        )
        log(
            f"job {job['sweep']}/{job['config']}: attempt {attempts}, store {self.store.uri}, "
            f"instance {facts['instanceType']} ({facts['market']})"
        )

        if (work / "job.json").is_file() and (work / "job.json").read_bytes() != raw:
            shutil.rmtree(work / "out", ignore_errors=True)
        (work / "job.json").write_bytes(raw)
        self.log_path = work / "train.log"
        if not self.log_path.exists():
            try:  # the log of earlier attempts (another instance's), so train.log tells the whole story
                if self.store.exists("train.log"):
                    self.store.download("train.log", self.log_path)
            except StorageError as e:
                log(f"warning: earlier attempts' log not fetched: {e}")
        with self.log_path.open("a") as fh:
            fh.write(
                f"=== attempt {attempts} on {facts['instanceType']} ({facts['market']}) at {utcnow()} ===\n"
            )
        self.out = work / "out"
        self.out.mkdir(exist_ok=True)
        try:
            if job.get("script"):
                return self.run_script(job)
            return self.run_trainer(job)
        except Interrupted as e:
            return self.interrupted(str(e), checkpoints=None)

    def start_over(self, work: Path) -> None:
        """job.json changed since the last attempt (a config edited and deployed again under the same name):
        its checkpoints belong to the old settings, so the job starts from scratch."""
        log("job.json changed since the last attempt: starting over (old checkpoints removed)")
        for obj in self.store.list(CHECKPOINTS):
            self.store.delete(obj.key)
        shutil.rmtree(work / "out", ignore_errors=True)
        self.board.doc.update(attempts=0, interruptions=0)

    def workdir(self) -> Path:
        if self.args.workdir:
            work = Path(self.args.workdir)
        else:
            base = os.environ.get("SPOT_SWEEP_WORKDIR") or os.path.join(tempfile.gettempdir(), "spot-sweep")
            work = Path(base) / self.job["sweep"] / self.job["config"]
        work.mkdir(parents=True, exist_ok=True)
        return work.resolve()

    def child_env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        return env

    def upload_log(self) -> None:
        try:
            self.store.upload(self.log_path, "train.log")
        except StorageError as e:
            log(f"warning: log not uploaded: {e}")

    def nproc(self) -> int:
        """Processes to start: the job's gpus when CUDA has that many, else 1 (plain python)."""
        gpus = self.job["gpus"]
        if gpus <= 1:
            return 1
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            log(f"gpus={gpus} but CUDA sees no GPU: running one process on this machine")
            return 1
        if count < gpus:
            raise JobError(
                f"The job asks for gpus={gpus} but CUDA sees {count}. "
                "Fix: choose instance types with that many GPUs or lower `gpus`."
            )
        return gpus

    def supervise(self, cmd: list[str], cwd: Path, env: dict, on_tick) -> tuple[int, str | None]:
        def tick() -> None:
            self.upload_log()
            on_tick()

        self.supervisor = Supervisor(
            cmd,
            cwd,
            env,
            self.log_path,
            self.args.sync_seconds,
            self.args.grace_seconds,
            tick,
            self.work / "child.pid",
        )
        self.board.set("TRAINING")
        rc = self.supervisor.run()
        return rc, self.supervisor.stop_reason

    # trainer mode ---------------------------------------------------------------------------------

    def run_trainer(self, job: dict) -> int:
        data = fetch_data(job["data"], self.work / "data", self.endpoint)
        sync = CheckpointSync(self.store, self.out / "checkpoints")
        try:
            resumed = sync.fetch()
        except StorageError as e:
            raise JobError(
                f"Checkpoints in {self.store.describe(CHECKPOINTS)} cannot be fetched: {e}", EXIT_FAILED
            ) from e
        if resumed:
            log(f"resuming: checkpoint(s) from the store: {', '.join(resumed)}")
        nproc = self.nproc()
        base = [sys.executable, "-m"]
        if nproc > 1:
            base += ["torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
        cmd = base + [
            "two_tower.train",
            "--config",
            str(self.work / "job.json"),
            "--data",
            str(data),
            "--out",
            str(self.out),
        ]

        def tick() -> None:
            sync.sync()
            self.board.progress(read_json(self.out / "status.json") or {})

        rc, stop_reason = self.supervise(cmd, self.work, self.child_env(), tick)
        sync.sync()
        self.upload_log()
        self.board.progress(read_json(self.out / "status.json") or {})
        if rc == EXIT_OK:  # even when a stop came too late to matter: the results are there
            return self.succeed_trainer()
        if stop_reason is not None or rc == EXIT_INTERRUPTED:
            return self.interrupted(stop_reason or "spot interruption notice", checkpoints=sync)
        tail = self.supervisor.tail if self.supervisor else []
        if rc == EXIT_BAD_INPUT:
            cause = tail[-1] if tail else "the trainer rejected its input"
            return self.fail(f"The trainer stopped on bad input: {cause}", EXIT_BAD_INPUT)
        how = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        last = " | ".join(list(tail)[-3:])
        return self.fail(f"The trainer {how}. Last log lines: {last}", EXIT_FAILED)

    def succeed_trainer(self) -> int:
        results = read_json(self.out / "results.json")
        if not isinstance(results, dict):
            return self.fail(
                "The trainer exited with success but wrote no readable results.json.", EXIT_FAILED
            )
        results["job"] = self.job_section()
        self.store.put_bytes("results.json", json.dumps(results, indent=2).encode())
        if (self.out / "folds.json").is_file():
            self.store.upload(self.out / "folds.json", "folds.json")
        self.upload_log()
        self.board.set("SUCCEEDED", progress=1.0, etaSeconds=0)
        log(f"SUCCEEDED: {self.store.describe('results.json')}")
        return EXIT_OK

    # script mode ------------------------------------------------------------------------------------

    def run_script(self, job: dict) -> int:
        spec = script_spec(job)
        code_dir = self.work / "code"
        try:
            fetch_code(spec, code_dir, self.endpoint)
            for line in apply_patches(spec, code_dir):
                log(line)
                with self.log_path.open("a") as fh:
                    fh.write(line + "\n")
            env = self.child_env()
            if job.get("data"):
                env["SPOT_SWEEP_DATA_DIR"] = str(fetch_data(job["data"], self.work / "data", self.endpoint))
            nproc = self.nproc()
            cmd = command(spec, code_dir, nproc)
        except ScriptError as e:
            raise JobError(f"Script mode: {e}") from e
        env["SPOT_SWEEP_DEVICE"] = default_device()
        env["SPOT_SWEEP_OUT_DIR"] = str(self.out)
        env["SPOT_SWEEP_GPUS"] = str(nproc)
        watcher = SpotNoticeWatcher(
            lambda body: self.supervisor and self.supervisor.request_stop(f"spot interruption notice {body}")
        )
        watcher.start()
        try:
            rc, stop_reason = self.supervise(cmd, code_dir, env, lambda: None)
        finally:
            watcher.stop()
        self.upload_log()
        if rc != EXIT_OK and (stop_reason is not None or rc == EXIT_INTERRUPTED):
            return self.interrupted(stop_reason or "the script exited with code 75", checkpoints=None)
        if rc != EXIT_OK:
            tail = self.supervisor.tail if self.supervisor else []
            how = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
            return self.fail(
                f"The script {spec.entrypoint} {how}. Last log lines: {' | '.join(list(tail)[-3:])}",
                EXIT_FAILED,
            )
        try:
            files = collect_results(spec, code_dir)
        except ScriptError as e:
            return self.fail(f"Script mode: {e}", EXIT_FAILED)
        names = []
        for path in files:
            rel = path.relative_to(code_dir).as_posix()
            self.store.upload(path, "results/" + rel)
            names.append(rel)
        single = read_json(files[0]) if len(files) == 1 else None
        results = {
            "version": 1,
            "mode": "script",
            "files": names,
            "results": single,
            "job": self.job_section(),
        }
        self.store.put_bytes("results.json", json.dumps(results, indent=2).encode())
        self.upload_log()
        self.board.set("SUCCEEDED", progress=1.0, etaSeconds=0)
        log(f"SUCCEEDED: {len(names)} result file(s) in {self.store.describe('results/')}")
        return EXIT_OK

    # endings ----------------------------------------------------------------------------------------

    def job_section(self) -> dict:
        return {
            "sweep": self.job["sweep"],
            "config": self.job["config"],
            "instanceType": self.facts["instanceType"],
            "market": self.facts["market"],
            "attempts": self.board.doc.get("attempts", 1),
            "interruptions": self.board.doc.get("interruptions", 0),
        }

    def fail(self, message: str, code: int) -> int:
        self.upload_log()
        self.board.set("FAILED", message=message)
        log(f"FAILED: {message}")
        return code

    def interrupted(self, reason: str, checkpoints: CheckpointSync | None) -> int:
        """An interrupted attempt: PENDING so the replacement instance resumes, or STOPPED when the user
        pressed Ctrl-C (SIGINT) or someone marked the job STOPPED in the store while it ran."""
        try:
            current = StatusBoard.load(self.store).state
        except StorageError:
            current = None
        stopped = reason == "SIGINT" or current == "STOPPED"
        interruptions = int(self.board.doc.get("interruptions") or 0) + 1
        saved = sorted(checkpoints.uploaded) if checkpoints else []
        resume = f"; the next attempt resumes from {saved[-1]}" if saved else ""
        message = f"attempt {self.board.doc.get('attempts')} interrupted by {reason}{resume}"
        self.upload_log()
        self.board.set("STOPPED" if stopped else "PENDING", interruptions=interruptions, message=message)
        log(message)
        return EXIT_INTERRUPTED


def default_device() -> str:
    """cuda → mps → cpu, exported to user scripts as SPOT_SWEEP_DEVICE (patches may read it)."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m two_tower.job", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--job", required=True, help="job.json location: s3://bucket/…/job.json, file:///…/job.json or a path"
    )
    p.add_argument(
        "--workdir",
        help="local working directory (data, out, code, train.log); default "
        "$SPOT_SWEEP_WORKDIR or <tmp>/spot-sweep, then /<sweep>/<config>",
    )
    p.add_argument(
        "--sync-seconds",
        type=float,
        default=float(os.environ.get("SPOT_SWEEP_SYNC_SECONDS", "30")),
        help="seconds between uploads of the log, new checkpoints and progress (default 30, "
        "env SPOT_SWEEP_SYNC_SECONDS)",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=100.0,
        help="seconds the trainer gets to checkpoint after SIGTERM before it is killed (default 100: "
        "a spot notice gives two minutes)",
    )
    p.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="S3 endpoint (default: env AWS_ENDPOINT_URL, else AWS)",
    )
    p.add_argument(
        "--fail",
        metavar="MESSAGE",
        help="record FAILED with MESSAGE in the job's status.json and exit 1 (the bootstrap uses this "
        "when the instance cannot run the job)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fail:
        return fail_from_outside(args)
    runner = Runner(args)
    runner.install_signal_handlers()
    try:
        return runner.run()
    except Interrupted as e:
        log(f"interrupted by {e} before the job started")
        return EXIT_INTERRUPTED
    except (JobError, StorageError) as e:
        message = e.message if isinstance(e, JobError) else f"Storage error: {e}"
        print(f"spot-sweep job: {message}", file=sys.stderr)
        report_failure(runner, message)
        return e.code if isinstance(e, JobError) else EXIT_FAILED
    except Exception:
        traceback.print_exc()
        report_failure(runner, "The job runner crashed: " + traceback.format_exc().strip().splitlines()[-1])
        return EXIT_FAILED


def report_failure(runner: Runner, message: str) -> None:
    """FAILED in the store (the job's, or the job file's folder when the job could not be read)."""
    store = getattr(runner, "store", None)
    if store is None:
        record_failure(fallback_store(runner.args.job), message, runner.endpoint)
        return
    if hasattr(runner, "log_path"):
        runner.upload_log()
    board = getattr(runner, "board", None)
    if board is None:
        record_failure(store.uri, message, runner.endpoint)
    else:
        board.set("FAILED", message=message)


def fail_from_outside(args: argparse.Namespace) -> int:
    store_uri = None
    try:
        job = json.loads(read_object(args.job, args.endpoint_url))
        store_uri = job.get("store") if isinstance(job, dict) else None
    except (StorageError, ValueError):
        pass
    record_failure(store_uri or fallback_store(args.job), args.fail, args.endpoint_url)
    print(f"spot-sweep job: {args.fail}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
