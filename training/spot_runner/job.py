"""The job runner: one config of a sweep, from job.json to results in the store.

    python -m spot_runner.job --job URI [--workdir DIR] [--sync-seconds N] [--grace-seconds N]

URI is ``s3://bucket/sweeps/<sweep>/<config>/job.json``, ``file:///…/job.json`` or a path. The
runner keeps ``<store>/status.json`` current (PENDING → BOOTSTRAPPING → TRAINING → SUCCEEDED |
FAILED | STOPPED), fetches the data and the checkpoints the store holds, runs the trainer
(``python -m two_tower.train``; torchrun with one process per GPU when CUDA has them) or the
user's patched script, tees its output into ``train.log`` and, every ``--sync-seconds``, uploads
the log, each new checkpoint (removing those the trainer dropped) and the progress. In both modes it
polls the EC2 spot interruption notice (``spot_notice``) and forwards it to the child as SIGTERM, so the
status names the notice as the cause; the trainer does not poll it itself.

It also reads ``<store>/control.json`` before the job starts and at every tick (``control``): a stop
request there makes it SIGTERM the child, upload the checkpoint and end STOPPED with the requester's
reason. The runner is the only writer of status.json; it never writes control.json.
It stops the job the same way on its own (``own_stop``), ending STOPPED with the cause in ``stoppedBy``: at
the instance's deadline (``--deadline``, which the bootstrap sets ahead of the SSM step's execution timeout;
a deadline already past when the child would start ends the job before it trains), and when the Auto
Scaling group is terminating the instance (a scale-in, seen in its metadata with the spot notice).
Before it reads status.json it takes the config's lease, ``<store>/lease.json`` (``lease``), and holds it
until it ends: two runners on one config (a replacement instance while the old one runs, a manual run
beside the fleet) never both train.
A status.json it cannot read is kept in ``history/`` and rebuilt from this job's results.json when there
is one (the job SUCCEEDED: nothing is retrained). Checkpoints made from other data than the job has now
(the data re-uploaded under the same job.json) make the trainer start over (``--on-data-change restart``).

Exit codes (training/contract/names.json ``exitCodes.runner``; the bootstrap relies on them): 0 success
(or the job had already succeeded: nothing is retrained); 2 bad job file, data, script patch or trainer
input, or a work directory that cannot be written (FAILED, one message, no traceback); 75 interrupted by
SIGTERM, SIGINT or a spot notice (checkpoint uploaded; status PENDING so a replacement resumes, or STOPPED
after Ctrl-C); 76 stopped on request (control.json: checkpoint uploaded, STOPPED with the requester's
reason), at the deadline or by a scale-in (STOPPED with that cause): the instance goes; 73 another
runner holds the config (its work directory or the lease: the holder is named, nothing is written), or
took the lease over mid-run (the child stopped, nothing more written); 1 anything else (FAILED).
Under torchrun the trainer's own code is read from its status.json (``exits.trainer_exit``).

Env ``SPOT_SWEEP_NPROC=N`` starts N processes under torchrun whatever the device: for tests and
trying DDP (gloo) on a CPU; on an instance the job's ``gpus`` decides.

The runner's parts, in this package (``spot_runner``, no torch at import): ``jobfile`` (job.json),
``status_board`` (status.json), ``control`` (control.json), ``storage``, ``fetch`` (the data),
``sync`` (checkpoints and log into the store), ``supervisor`` (the child process), ``imds`` (instance
facts), ``spot_notice`` (the spot interruption notice and the group's termination), ``own_stop`` (the
deadline and the scale-in), ``user_script`` (script mode), ``exits`` (exit
codes), ``retries`` (job.json ``retries``: whether a failed trainer or script runs again, from its checkpoint,
on this instance; the count is kept in status.json so a replacement continues it), ``lease`` (lease.json: one
runner per config), ``quote`` (values echoed in messages),
``setup_times`` (results.json ``job.setup``: the bootstrap's and the runner's phases, the boot time, the first
training step), ``embedding_cache`` (job.json ``encoder``: the texts encoded once into the store). The
trainer is the ``two_tower`` package, run as a separate process.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import contract
from contract import CONFIG_FILES, RUNNING_STATES, STOP_CAUSES, TRAINER_OUT, Mode, State

from . import retries
from .clock import utcnow
from .control import Control, StopRequest
from .embedding_cache import EmbeddingCache
from .exits import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    trainer_exit,
)
from .fetch import fetch_data
from .gpu_metrics import start_gpu_metrics
from .imds import instance_facts
from .jobfile import fallback_store, parse_job, script_spec
from .lease import Lease, LeaseBusy, lease_ttl
from .machine import script_env
from .model_upload import MODEL, ModelError, upload_model
from .own_stop import Deadline, OwnStop, scale_in_stop
from .quote import quote
from .requirements import CACHE_ENV as WHEEL_CACHE_ENV
from .requirements import install as install_requirements
from .runlog import JobError, log
from .script_metric import read_metric
from .setup_times import FirstStepWatch, SetupClock
from .spot_notice import SpotPoller
from .status_board import DIGEST, STATUS, StatusBoard, record_failure
from .storage import StorageError, open_store, read_object
from .supervisor import Supervisor, python_command
from .sync import CHECKPOINTS, SCRIPT_CHECKPOINTS, CheckpointSync, upload_log
from .user_script import ScriptError, apply_patches, collect_results, command, fetch_code

JOB, RESULTS, LOG, FOLDS = (CONFIG_FILES[k] for k in ("job", "results", "log", "folds"))
SCRIPT_RESULTS = CONFIG_FILES["scriptResults"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
NPROC_ENV = "SPOT_SWEEP_NPROC"
# The trainer's --out in the work directory (names.json runnerWorkdir); `spot-sweep local` reads its status.
WORK_OUT = contract.NAMES["runnerWorkdir"]["trainerOut"]


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived before the trainer was started."""


class Busy(Exception):
    """Another runner holds this config's work directory."""


class PastDeadline(Exception):
    """The instance's deadline passed before the child was started: it is not started."""


class Runner:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.endpoint = args.endpoint_url
        self.supervisor: Supervisor | None = None
        self.log_path: Path | None = None
        self.pending_signal: str | None = None
        self.stop: StopRequest | None = None  # the control.json stop this attempt obeys
        self.obeyed_before: str | None = None  # id of a stop the job obeyed before job.json changed
        self.own: OwnStop | None = None  # a stop the runner decided on its own (deadline, scale-in)
        self.deadline = Deadline(args.deadline)

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
        self.hold_workdir()
        self.store = open_store(job["store"], self.endpoint)
        # One runner per config across machines (lease.py): taken before status.json is read, so a runner
        # that finds a live holder writes nothing; renewed by its own thread; released in main's finally.
        self.lease = Lease(self.store, lease_ttl(self.args.sync_seconds))
        self.lease.acquire(f"{job['sweep']}/{job['config']}")
        self.lease.hold(on_lost=lambda reason: self.supervisor and self.supervisor.request_stop(reason))
        board = StatusBoard.load(self.store)
        self.board = board
        board.doc.update(sweep=job["sweep"], config=job["config"])
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if board.unreadable is not None and self.recover_status(digest):
            return EXIT_OK
        changed = board.doc.get("jobDigest") not in (None, digest)
        if board.state == State.SUCCEEDED and not changed and self.store.get_bytes(RESULTS) is not None:
            log(f"{self.store.describe(RESULTS)} exists and the job SUCCEEDED: nothing to do")
            return EXIT_OK
        self.control = Control(self.store)
        asked = self.control.stop_request()
        if asked is not None and changed and board.doc.get("stopRequestId") == asked.id:
            # That stop was obeyed by the job before job.json changed: it stopped that job, not this one, and
            # stays ignored for this whole attempt (sync ticks and the ending read control.json again).
            log(f"job.json changed since {asked.describe()}, which the previous job obeyed: this job runs")
            self.obeyed_before = asked.id
            asked = None
        if asked is not None:
            return self.stop_before_start(asked, digest)
        if self.deadline.passed():  # the bootstrap took the whole time: the job does not start
            return self.own_stop_before_start(self.deadline.stop(job["maxRuntimeHours"]), digest)
        try:
            return self.attempt(job, raw, digest, changed)
        except Interrupted as e:  # SIGTERM/SIGINT before the child started: no checkpoint to wait for
            return self.interrupted(str(e), checkpoints=None)
        except PastDeadline:  # the downloads took the rest of the time
            self.own = self.deadline.stop(job["maxRuntimeHours"])
            log(f"{self.own.summary} before the child started: it is not started")
            return self.interrupted(self.own.summary, checkpoints=None)

    def standing_stop(self) -> StopRequest | None:
        """control.json's stop request, unless it is one a previous job (before job.json changed) obeyed."""
        asked = self.control.stop_request()
        return None if asked is not None and asked.id == self.obeyed_before else asked

    def attempt(self, job: dict, raw: bytes, digest: str, changed: bool) -> int:
        """One attempt at the job: set up the work directory, the status and the log, then run the child."""
        board = self.board
        work = self.work  # made and locked by hold_workdir
        if changed:
            self.start_over(work, board.doc.get("jobDigest"))
        if self.store.get_bytes(JOB) != raw:
            # The sweep stack ships job.json as a deploy asset; the store keeps the copy that ran,
            # beside its status and results (sweeps/<sweep>/<config>/job.json).
            self.store.put_bytes(JOB, raw)
        if board.state is None:
            board.set(State.PENDING, attempts=0, interruptions=0)
        board.doc.setdefault("interruptions", 0)
        if board.state in RUNNING_STATES and not changed:
            # The previous attempt never ended: its runner died without a word (kill -9, a lost instance), and
            # this runner holds the lease only because that one stopped renewing it. It was interrupted.
            lost = int(board.doc.get("attempts") or 0)
            board.doc["interruptions"] = int(board.doc["interruptions"]) + 1
            why = f"attempt {lost} ended without a word (its runner was killed or its instance lost)"
            log(why + ": counted as interrupted")
            board.set(State.PENDING, message=why)
        attempts = int(board.doc.get("attempts") or 0) + 1
        # The retries used so far come from the store: a replacement instance continues the count.
        self.retries = retries.counts(board.doc, job["retries"])
        facts = instance_facts()
        self.facts = facts
        self.setup = SetupClock()  # this attempt's: job.setup speaks of the attempt that finished
        board.set(
            State.BOOTSTRAPPING,
            jobDigest=digest,
            attempts=attempts,
            instanceType=facts["instanceType"],
            market=facts["market"],
            startedAt=utcnow(),
            mode=Mode.SCRIPT if job.get("script") else Mode.TRAIN,
            retries=dict(self.retries),
        )
        log(
            f"job {job['sweep']}/{job['config']}: attempt {attempts}, store {self.store.uri}, "
            f"instance {facts['instanceType']} ({facts['market']})"
        )

        with self.writing_work(work / JOB):
            if (work / JOB).is_file() and (work / JOB).read_bytes() != raw:
                shutil.rmtree(work / WORK_OUT, ignore_errors=True)
            (work / JOB).write_bytes(raw)
        log_path = work / LOG
        with self.writing_work(log_path):
            if not log_path.exists():
                try:  # the log of earlier attempts (another instance's), so train.log tells the whole story
                    if self.store.exists(LOG):
                        self.store.download(LOG, log_path)
                except StorageError as e:
                    if disk_error(e):
                        raise
                    log(f"warning: earlier attempts' log not fetched: {e}")
            where = f"{facts['instanceType']} ({facts['market']})"
            with log_path.open("a") as fh:
                fh.write(f"=== attempt {attempts} on {where} at {utcnow()} ===\n")
        # Only now: a log that could not be set up here must not replace the store's, earlier attempts' log.
        self.log_path = log_path
        self.out = work / WORK_OUT
        with self.writing_work(self.out):
            self.out.mkdir(exist_ok=True)
        if job.get("script"):
            return self.run_script(job)
        return self.run_trainer(job)

    def start_over(self, work: Path, old_digest: str | None) -> None:
        """job.json changed since the last attempt (a config edited and deployed again under the same name):
        its checkpoints belong to the old settings, so the job starts from scratch; the old job's results
        move to history/<old digest>/ (kept, never ranked: no reader takes them for this job's)."""
        log("job.json changed since the last attempt: starting over (old checkpoints removed)")
        for obj in self.store.list(CHECKPOINTS):
            self.store.delete(obj.key)
        history = CONFIG_FILES["history"] + (old_digest or "unknown").replace("sha256:", "")[:16] + "/"
        # The old job's model moves too: the new job's results.json (or none) is what names a model.
        old = [*(o.key for o in self.store.list(SCRIPT_RESULTS)), *(o.key for o in self.store.list(MODEL))]
        for key in [RESULTS, FOLDS, *old]:
            data = self.store.get_bytes(key)
            if data is not None:
                self.store.put_bytes(history + key, data)
                self.store.delete(key)
                log(f"the previous job's {key} moved to {self.store.describe(history + key)}")
        shutil.rmtree(work / WORK_OUT, ignore_errors=True)
        self.board.doc.update(attempts=0, interruptions=0)
        self.board.doc.pop("retries", None)  # the new job's retries start at none used

    def recover_status(self, digest: str) -> bool:
        """status.json is unreadable (damaged, or written by hand): its bytes go to history/ first. When
        the store's results.json is this job.json's (strict JSON that fits the schema, the same jobDigest),
        the job SUCCEEDED: status.json is rebuilt from it and nothing is trained (True). Otherwise the job
        goes on with a fresh status (False); results.json of an earlier job.json then counts as a changed
        job, so that start_over moves it to history/ and removes that job's checkpoints."""
        board = self.board
        kept = self.store.describe(board.keep_unreadable())
        results = parse_json(self.store.get_bytes(RESULTS), strict=True)
        section = results.get("job") if isinstance(results, dict) else None
        of_job = section.get("jobDigest") if isinstance(section, dict) else None
        problem = board.unreadable.problem
        why = f"{self.store.describe(STATUS)} was unreadable ({problem}; its bytes are in {kept})"
        if of_job == digest and not contract.problems("results", results):
            board.rebuild_from(results)
            log(f"{why}: rebuilt it from {self.store.describe(RESULTS)}: SUCCEEDED, nothing to do")
            return True
        if isinstance(of_job, str) and DIGEST.fullmatch(of_job):
            board.doc["jobDigest"] = of_job
            log(f"{why}: starting a fresh status, as results.json is an earlier job.json's")
        else:
            log(f"{why}: starting a fresh status, as there are no results of this job.json")
        return False

    def hold_workdir(self) -> None:
        """One runner per config: an exclusive lock on its work directory, held until this process ends
        (the kernel releases it even after a kill -9). A second runner says who holds it and changes
        nothing, status.json included."""
        work = self.work = self.workdir()
        try:
            self._lock_file = (work / ".runner.lock").open("a+")
        except OSError as e:
            raise JobError(work_disk_problem(work, e)) from e
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "unknown"
            # SIGTERM makes that runner checkpoint and end PENDING: the next run resumes from the checkpoint.
            raise Busy(
                f"another job runner (pid {holder}) is running {self.job['sweep']}/{self.job['config']} in "
                f"{work}: this one changes nothing and exits. Fix: wait for it to end, or end it with "
                f"`kill {holder}` (it checkpoints first), then run again."
            ) from None
        with self.writing_work(work / ".runner.lock"):
            self._lock_file.seek(0)
            self._lock_file.truncate()
            self._lock_file.write(str(os.getpid()))
            self._lock_file.flush()

    @contextlib.contextmanager
    def writing_work(self, target: Path):
        """Writes into the work directory (``target``: what is written): a read-only or full disk ends the job
        in one sentence naming the directory and the cause (exit 2), instead of a traceback. Only the errors
        a write into it can raise are caught, also when a download into it wraps them in a StorageError."""
        try:
            yield
        except (OSError, StorageError) as e:
            cause = disk_error(e)
            if cause is None:
                raise
            raise JobError(work_disk_problem(self.work, cause, target)) from e

    def workdir(self) -> Path:
        if self.args.workdir:
            work = Path(self.args.workdir)
        else:
            base = os.environ.get("SPOT_SWEEP_WORKDIR") or os.path.join(tempfile.gettempdir(), "spot-sweep")
            work = Path(base) / self.job["sweep"] / self.job["config"]
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JobError(work_disk_problem(work.absolute(), e)) from e
        return work.resolve()

    def child_env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        return env

    def upload_log(self) -> None:
        if getattr(self, "log_path", None) is not None:  # None before the attempt set up its log
            upload_log(self.store, self.log_path)

    def nproc(self) -> int:
        """Processes to start: the job's gpus when CUDA has that many, else 1 (plain python); env
        SPOT_SWEEP_NPROC=N forces N processes under torchrun on any device (tests: DDP over gloo on CPU)."""
        forced = os.environ.get(NPROC_ENV)
        if forced:
            if not forced.isdigit() or int(forced) < 1:
                raise JobError(f"{NPROC_ENV}={quote(forced)} must be an integer >= 1. Fix: correct or unset.")
            log(f"{NPROC_ENV}={forced}: starting {forced} process(es) whatever the device")
            return int(forced)
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

    def supervise(self, cmd: list[str], cwd: Path, env: dict, on_tick) -> tuple[int, Supervisor]:
        """Run the child to its end (status TRAINING meanwhile); the log goes up at every tick. A spot
        interruption notice (polled while the child runs, in both modes) stops the child as SIGTERM does,
        with the notice as the stop reason."""

        def tick() -> None:
            if self.lease.lost:  # the store is the new holder's: the child is being stopped, nothing goes up
                return
            self.upload_log()
            on_tick()
            asked = self.standing_stop() if self.stop is None else None
            if asked is not None:
                self.stop = asked
                supervisor.request_stop(asked.describe())

        supervisor = Supervisor(
            cmd,
            cwd,
            env,
            self.log_path,
            self.args.sync_seconds,
            self.args.grace_seconds,
            tick,
            self.work / "child.pid",
        )
        self.lease.confirm()  # lost while the data was fetched: no child, no TRAINING
        if self.deadline.passed():
            raise PastDeadline()
        previous, self.supervisor = self.supervisor, supervisor  # from now on a signal stops this child
        if previous is not None and previous.stop_reason is not None:
            # A retry's run: a signal that came between the failed run's end and now went to the ended child's
            # supervisor; this run stops at once for it (a spot notice or a stop during a retry wins).
            supervisor.request_stop(previous.stop_reason)
        self.board.set(State.TRAINING)
        watcher = SpotPoller(
            supervisor.request_stop, on_terminating=lambda: self.stop_on_own(scale_in_stop())
        )
        if watcher.start_if_on_ec2():
            log(
                f"spot: polling the interruption notice every {watcher.interval_s:g} s, with the group's "
                "target lifecycle state"
            )
        else:
            log("spot: no IMDS answer, not polling")
        self.deadline.watch(lambda: self.stop_on_own(self.deadline.stop(self.job["maxRuntimeHours"])))
        start_gpu_metrics()  # only now: the downloads above must not look like an idle GPU
        first_step = None
        if self.job.get("script"):
            self.setup.saw_first_step(time.time())  # a script's steps are not visible: its start is the best
        else:
            first_step = FirstStepWatch(self.out / TRAINER_OUT["status"]).start()
        try:
            rc = supervisor.run()
            self.lease.confirm()  # a runner frozen for longer than a ttl must not write the job's ending
            return rc, supervisor
        finally:
            watcher.halt()
            self.deadline.cancel()
            if first_step is not None:
                first_step.halt()
                self.setup.saw_first_step(first_step.seen_at)

    def stop_on_own(self, own: OwnStop) -> None:
        """Stop the child for ``own`` (from the deadline's timer or the poller's thread), unless the child is
        already stopping for another cause, which then stays the outcome (a spot notice keeps the
        instance)."""
        supervisor = self.supervisor
        if supervisor is None or supervisor.stop_reason is not None or self.own is not None:
            return
        self.own = own
        supervisor.request_stop(own.summary)

    # trainer mode ---------------------------------------------------------------------------------

    def run_trainer(self, job: dict) -> int:
        with self.writing_work(self.work / "data"), self.setup.phase("fetch-data"):
            data = fetch_data(job["data"], self.work / "data", self.endpoint)
        if job.get("encoder"):  # the texts as the encoder's vectors, from the store's cache or encoded now
            with self.writing_work(self.work / "embeddings"), self.setup.phase("encode-texts"):
                data = EmbeddingCache(job, self.work, self.endpoint, self.child_env(), self.note).prepare(
                    data
                )
        sync = CheckpointSync(self.store, self.out / TRAINER_OUT["checkpoints"])
        try:
            with self.writing_work(sync.local_dir), self.setup.phase("fetch-checkpoint"):
                resumed = sync.fetch()
        except StorageError as e:
            raise JobError(
                f"Checkpoints in {self.store.describe(CHECKPOINTS)} cannot be fetched: {e}", EXIT_FAILED
            ) from e
        if resumed:
            log(f"resuming: checkpoint(s) from the store: {', '.join(resumed)}")
        cmd = python_command(
            self.nproc(),
            *("-m", "two_tower.train", "--config", str(self.work / JOB)),
            *("--data", str(data), "--out", str(self.out)),
            # Checkpoints made from other data (the user uploaded new data under the same job.json) are
            # fetched from the store at every start: deleting them, as the bare trainer asks, cannot stick, so
            # the trainer starts over on the new data and the sync mirrors its new checkpoints over the old.
            *("--on-data-change", "restart"),
        )

        def tick() -> None:
            sync.sync()
            self.board.progress(read_json(self.out / TRAINER_OUT["status"]) or {})

        while True:  # one pass per run of the trainer: a retry (retries.py) reruns it from its checkpoint
            # An earlier attempt's status must not speak for this one (see trainer_exit).
            (self.out / TRAINER_OUT["status"]).unlink(missing_ok=True)
            rc, child = self.supervise(cmd, self.work, self.child_env(), tick)
            sync.sync()
            self.upload_log()
            trainer_status = read_json(self.out / TRAINER_OUT["status"])
            self.board.progress(trainer_status if isinstance(trainer_status, dict) else {})
            rc, cause = trainer_exit(rc, trainer_status)
            if rc == EXIT_OK:  # even when a stop came too late to matter: the results are there
                return self.succeed_trainer()
            if child.stop_reason is not None or rc == EXIT_INTERRUPTED:
                return self.interrupted(child.interruption(rc, "the trainer", cause), checkpoints=sync)
            if rc == EXIT_BAD_INPUT:
                cause = cause or (child.tail[-1] if child.tail else "the trainer rejected its input")
                message, code = f"The trainer stopped on bad input: {cause}", EXIT_BAD_INPUT
            else:
                message, code = f"The trainer {child.ending(rc)}", EXIT_FAILED
            ended = self.after_failure(rc, message, code, sync)
            if ended is not None:
                return ended

    def succeed_trainer(self) -> int:
        results = read_json(self.out / TRAINER_OUT["results"])
        if not isinstance(results, dict):
            return self.fail(
                "The trainer exited with success but wrote no readable results.json.", EXIT_FAILED
            )
        results["job"] = self.job_section()
        # Never a result that looks like success but is not one: results.json must be strict JSON (no NaN
        # from a diverged loss) and fit results.schema.json, or the job FAILS and nothing is uploaded.
        try:
            text = json.dumps(results, indent=2, allow_nan=False)
        except ValueError:
            return self.fail(
                "The trainer's results hold a non-finite number (NaN or infinity: the training diverged). "
                "Fix: lower learningRate, or use precision fp32.",
                EXIT_FAILED,
            )
        found = contract.problems("results", results)
        if found:
            return self.fail(
                f"The trainer's results.json does not fit results.schema.json: {'; '.join(found[:5])}.",
                EXIT_FAILED,
            )
        if (self.out / TRAINER_OUT["folds"]).is_file():
            self.store.upload(self.out / TRAINER_OUT["folds"], FOLDS)
        # The model before results.json, which names it: a results.json never points at a model not yet
        # uploaded (results.json is the last object of a job).
        try:
            results["model"] = upload_model(self.store, self.out, self.job["sweep"], self.job["config"])
        except ModelError as err:
            return self.fail(str(err), EXIT_FAILED)
        text = json.dumps(results, indent=2, allow_nan=False)
        self.store.put_bytes(
            RESULTS, text.encode()
        )  # last: its arrival means the job's outputs are all there
        self.upload_log()
        self.board.set(State.SUCCEEDED, progress=1.0, etaSeconds=0)
        log(f"SUCCEEDED: {self.store.describe(RESULTS)}")
        return EXIT_OK

    # script mode ------------------------------------------------------------------------------------

    def run_script(self, job: dict) -> int:
        spec = script_spec(job)
        code_dir = self.work / "code"
        python = sys.executable
        try:
            with self.writing_work(code_dir):
                with self.setup.phase("fetch-code"):
                    fetch_code(spec, code_dir, self.endpoint)
                for line in apply_patches(spec, code_dir):
                    self.note(line)
                env = self.child_env()
                env.pop("SPOT_SWEEP_DATA_DIR", None)  # set only when the job has data: never one from outside
                if job.get("data"):
                    with self.setup.phase("fetch-data"):
                        data = fetch_data(job["data"], self.work / "data", self.endpoint)
                    env["SPOT_SWEEP_DATA_DIR"] = str(data)
            if spec.requirements:
                with self.writing_work(self.work), self.setup.phase("script-requirements"):
                    python = install_requirements(
                        code_dir,
                        spec.requirements,
                        self.work,
                        cache_uri=os.environ.get(WHEEL_CACHE_ENV),
                        endpoint_url=self.endpoint,
                    )
            # Launcher python: one process that sees every GPU (a DataParallel script); torchrun: one per GPU.
            nproc = self.nproc() if spec.launcher == "torchrun" else 1
            cmd = command(spec, code_dir, nproc, python)
        except ScriptError as e:
            raise JobError(f"Script mode: {e}", e.code) from e
        sync = CheckpointSync(self.store, self.work / "script-checkpoints", SCRIPT_CHECKPOINTS, nested=True)
        try:
            with self.writing_work(sync.local_dir), self.setup.phase("fetch-checkpoint"):
                shutil.rmtree(
                    sync.local_dir, ignore_errors=True
                )  # the store's copy is the one to resume from
                resumed = sync.fetch()
        except StorageError as e:
            raise JobError(
                f"Checkpoints in {self.store.describe(SCRIPT_CHECKPOINTS)} cannot be fetched: {e}",
                EXIT_FAILED,
            ) from e
        if resumed:
            self.note(
                f"resuming: {len(resumed)} checkpoint file(s) from {self.store.describe(SCRIPT_CHECKPOINTS)}"
            )
        env.update(script_env(self.facts["instanceType"], job["gpus"]))
        env["SPOT_SWEEP_OUT_DIR"] = str(self.out)
        env["SPOT_SWEEP_CHECKPOINT_DIR"] = str(sync.local_dir)
        while True:  # one pass per run of the script: a retry (retries.py) reruns it on its checkpoints
            rc, child = self.supervise(cmd, code_dir, env, sync.sync)
            # After the script exited, however it ended: a checkpoint it wrote at SIGTERM goes up before the
            # instance does (the grace period leaves the rest of the spot notice's two minutes for this).
            sync.sync()
            self.upload_log()
            # A script that was asked to stop and exits 0 anyway has not finished: its results may be partial.
            if child.stop_reason is not None or rc == EXIT_INTERRUPTED:
                return self.interrupted(
                    child.interruption(rc, f"the script {spec.entrypoint}"), checkpoints=sync
                )
            if rc == EXIT_OK:
                break
            message = f"The script {spec.entrypoint} {child.ending(rc)}"
            ended = self.after_failure(rc, message, EXIT_FAILED, sync)
            if ended is not None:
                return ended
        try:
            files = collect_results(spec, code_dir)
            metric = read_metric(spec.metric, code_dir, files) if spec.metric else None
        except ScriptError as e:
            return self.fail(f"Script mode: {e}", e.code)
        names = []
        for path in files:
            rel = path.relative_to(code_dir).as_posix()
            self.store.upload(path, SCRIPT_RESULTS + rel)
            names.append(rel)
        single = read_json(files[0], strict=True) if len(files) == 1 else None
        results = {
            "version": 1,
            "mode": Mode.SCRIPT,
            "files": names,
            "results": single,
            "metric": metric,
            "job": self.job_section(),
        }
        self.store.put_bytes(RESULTS, json.dumps(results, indent=2, allow_nan=False).encode())
        self.upload_log()
        self.board.set(State.SUCCEEDED, progress=1.0, etaSeconds=0)
        score = f"; {metric['name']} = {metric['mean']:g}" if metric else "; no metric declared"
        log(f"SUCCEEDED: {len(names)} result file(s) in {self.store.describe(SCRIPT_RESULTS)}{score}")
        return EXIT_OK

    def note(self, line: str) -> None:
        """A runner line on stderr and in train.log (the story of the attempt, read in the store)."""
        log(line)
        with self.log_path.open("a") as fh:
            fh.write(line + "\n")

    # endings ----------------------------------------------------------------------------------------

    def job_section(self) -> dict:
        return {
            "sweep": self.job["sweep"],
            "config": self.job["config"],
            "instanceType": self.facts["instanceType"],
            "market": self.facts["market"],
            "attempts": self.board.doc.get("attempts", 1),
            "interruptions": self.board.doc.get("interruptions", 0),
            "jobDigest": self.board.doc.get("jobDigest"),
            "setup": self.setup.section(),
            # Kept with the results, so that once they move to history/ (a changed job) the report still
            # says when they were made.
            "finishedAt": utcnow(),
        }

    def fail(self, message: str, code: int, entry: dict | None = None) -> int:
        self.upload_log()
        self.board.set(State.FAILED, entry=entry, message=message)
        log(f"FAILED: {message}")
        return code

    def after_failure(self, rc: int, message: str, code: int, checkpoints: CheckpointSync) -> int | None:
        """The child (trainer or script) failed with ``rc``: the job ends FAILED (its exit code returned), or,
        when job.json ``retries`` allows one (retries.py), the failed attempt goes into the history with its
        cause and exit code and None is returned: the caller runs the child again, on the same instance,
        from the checkpoints it left. A stop requested meanwhile (control.json, the runner's own, a signal
        to the runner) wins: no retry, the job ends as ``interrupted`` says."""
        exit_code = rc if rc >= 0 else 128 - rc  # killed by signal N: 128 + N, as a shell reports it
        decision = retries.decide(self.job["retries"], exit_code, self.retries["used"])
        cause = f"{message.splitlines()[0][:1000]}; {decision.cause}"
        if not decision.retry:
            if self.retries["max"] > 0:  # the user asked for retries: say why there is none
                message = f"{message} ({decision.cause})"
            return self.fail(message, code, entry={"cause": cause, "exitCode": exit_code})
        self.board.note_failed_attempt(cause, exit_code)
        asked = self.stop or self.standing_stop()
        if asked is not None or self.own is not None or self.supervisor.stop_reason is not None:
            self.stop = asked
            reason = self.supervisor.stop_reason or (asked.describe() if asked else self.own.summary)
            log(f"attempt {self.board.doc.get('attempts')} failed ({decision.cause}), but a stop came first")
            return self.interrupted(reason, checkpoints=checkpoints)
        self.retries["used"] += 1
        attempts = int(self.board.doc.get("attempts") or 0) + 1
        digest = TRAINER_OUT["checkpointDigestSuffix"]
        saved = sorted(n for n in checkpoints.uploaded if not n.endswith(digest))
        resume = f", resuming from {saved[-1]}" if saved else ", from the start (no checkpoint yet)"
        note = f"attempt {attempts - 1} failed ({decision.cause}): attempt {attempts} starts{resume}"
        retried = {"attempts": attempts, "retries": dict(self.retries), "startedAt": utcnow()}
        self.board.set(State.BOOTSTRAPPING, message=note, **retried)
        with self.log_path.open("a") as fh:
            retry = f"retry {self.retries['used']} of {self.retries['max']}"
            fh.write(f"=== attempt {attempts} ({retry}) on the same instance at {utcnow()} ===\n")
        self.note(note)
        return None

    def interrupted(self, reason: str, checkpoints: CheckpointSync | None) -> int:
        """An interrupted attempt. A stop requested in control.json (seen while the child ran, or now: a
        scale-in's SIGTERM often comes first) ends STOPPED with the requester's reason (exit 76: nothing
        resumes until a start request); Ctrl-C (SIGINT) ends STOPPED too (exit 75); anything else (a spot
        notice, a SIGTERM) ends PENDING so that the replacement instance resumes (exit 75)."""
        interruptions = int(self.board.doc.get("interruptions") or 0) + 1
        # The checkpoints, not their digest files (the trainer writes a ckpt-<seq>.pt.sha256 beside each).
        digest = TRAINER_OUT["checkpointDigestSuffix"]
        saved = sorted(n for n in checkpoints.uploaded if not n.endswith(digest)) if checkpoints else []
        self.upload_log()
        killed = self.supervisor.kill_note() if self.supervisor else ""  # after the reason, kept verbatim
        asked = self.stop or self.standing_stop()
        if asked is not None or self.own is not None:  # a requester's stop wins over the runner's own
            kept = f" Checkpoint {saved[-1]} is kept: `spot-sweep start` resumes from it." if saved else ""
            if asked is not None:
                text, by, request, summary = (
                    asked.reason,
                    asked.by,
                    {"stopRequestId": asked.id},
                    f"obeyed {asked.describe()}",
                )
            else:
                text, by, request, summary = self.own.reason, self.own.by, {}, self.own.summary
            self.board.set(
                State.STOPPED,
                interruptions=interruptions,
                message=text + killed + kept,
                stoppedBy=by,
                **request,
            )
            log(f"STOPPED: {summary}")
            return EXIT_STOPPED
        resume = f"; the next attempt resumes from {saved[-1]}" if saved else ""
        message = f"attempt {self.board.doc.get('attempts')} interrupted by {reason}{killed}{resume}"
        state = State.STOPPED if reason == "SIGINT" else State.PENDING
        self.board.set(state, interruptions=interruptions, message=message)
        log(message)
        return EXIT_INTERRUPTED

    def stop_before_start(self, asked: StopRequest, digest: str) -> int:
        """control.json asked for a stop before this attempt began (a stopped config's instance came back,
        or a replacement launched while the stop was on its way): the job stays STOPPED and does not run."""
        if self.board.state == State.STOPPED and self.board.doc.get("stopRequestId") == asked.id:
            log(f"the job stays STOPPED: {asked.describe()} (a start request runs it again)")
            return EXIT_STOPPED
        self.board.set(
            State.STOPPED, message=asked.reason, stoppedBy=asked.by, stopRequestId=asked.id, jobDigest=digest
        )
        log(f"STOPPED before the attempt started: obeyed {asked.describe()}")
        return EXIT_STOPPED

    def own_stop_before_start(self, own: OwnStop, digest: str) -> int:
        """The runner's own stop (the deadline) came before this attempt began: STOPPED, nothing runs."""
        self.board.set(State.STOPPED, message=own.reason, stoppedBy=own.by, jobDigest=digest)
        log(f"STOPPED before the attempt started: {own.summary}")
        return EXIT_STOPPED


ELSEWHERE = "run the job with --workdir (env SPOT_SWEEP_WORKDIR) on"
WRITE_ERRORS = {
    errno.ENOSPC: (
        "there is no space left on its disk",
        f"free space on that disk, or {ELSEWHERE} a disk with room for the data, the checkpoints and the log "
        "(on AWS: raise the config's volumeGb)",
    ),
    errno.EDQUOT: ("the disk quota there is used up", f"free space within it, or {ELSEWHERE} another disk"),
    errno.EROFS: ("it is on a read-only file system", f"{ELSEWHERE} a writable disk"),
}
"""The errors of a write into the work directory that say its disk cannot take it: the problem and the fix."""
NOT_ALLOWED = (
    "this user may not write there",
    f"give this user write permission, or {ELSEWHERE} another disk",
)


def disk_error(e: BaseException) -> OSError | None:
    """The OSError of a write the disk refused (WRITE_ERRORS), raised as is or under a StorageError."""
    cause = e if isinstance(e, OSError) else e.__cause__
    return cause if isinstance(cause, OSError) and cause.errno in WRITE_ERRORS else None


def work_disk_problem(work: Path, err: OSError, target: Path | None = None) -> str:
    """The sentence for a work directory that cannot be written: which, why, and what to do."""
    problem, fix = WRITE_ERRORS.get(err.errno) or (
        NOT_ALLOWED
        if err.errno in (errno.EACCES, errno.EPERM)
        else (str(err.strerror or err).lower(), f"make it a writable directory, or {ELSEWHERE} another disk")
    )
    what = err.filename or target
    written = f" (writing {what} failed)" if what and Path(what) != work else ""
    return f"The work directory {work} cannot be used: {problem}{written}. Fix: {fix}."


def parse_json(data: bytes | None, strict: bool = False) -> object | None:
    """The bytes' JSON, or None when there are none or they are not JSON (``strict``: NaN and Infinity count
    as not JSON, so that what is copied into results.json stays strict JSON)."""

    def reject(constant: str) -> object:
        raise ValueError(constant)

    try:
        return None if data is None else json.loads(data, parse_constant=reject if strict else None)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def read_json(path: Path, strict: bool = False) -> object | None:
    """The file's JSON, or None when it is missing or not JSON (``parse_json``)."""
    try:
        return parse_json(path.read_bytes(), strict)
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m spot_runner.job", description=__doc__.split("\n\n")[0])
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
    # "A Spot Instance interruption notice is a warning that is issued two minutes before Amazon EC2 stops or
    # terminates your Spot Instance": the child (trainer or script) gets 100 s of those 120 after SIGTERM, the
    # notice is polled every 5 s, and the rest is for the runner's last checkpoint and log uploads.
    # @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=100.0,
        help="seconds the trainer or script gets to checkpoint after SIGTERM before it is killed (SIGKILL) "
        "(default 100: a spot notice gives two minutes, and the last checkpoint upload needs the rest)",
    )
    p.add_argument(
        "--deadline",
        type=float,
        metavar="EPOCH_SECONDS",
        help="stop the job (checkpoint, upload, STOPPED at max runtime, exit 76) at this time, in seconds "
        "since the epoch; the bootstrap sets it ahead of the SSM step's execution timeout (default: none)",
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
    p.add_argument(
        "--stopped",
        metavar="MESSAGE",
        help="record STOPPED with MESSAGE and stoppedBy 'scale-in' in the job's status.json and exit with "
        "the stopped code (the bootstrap uses this when the group terminates the instance before the job "
        "started)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fail or args.stopped:
        return fail_from_outside(args)
    runner = Runner(args)
    runner.install_signal_handlers()
    try:
        return runner.run()
    except Interrupted as e:
        log(f"interrupted by {e} before the job started")
        return EXIT_INTERRUPTED
    except (Busy, LeaseBusy) as e:
        print(f"spot-sweep job: {e}", file=sys.stderr)
        return EXIT_BUSY
    except (JobError, StorageError) as e:
        message = e.message if isinstance(e, JobError) else f"Storage error: {e}"
        print(f"spot-sweep job: {message}", file=sys.stderr)
        report_failure(runner, message)
        return e.code if isinstance(e, JobError) else EXIT_FAILED
    except Exception:
        traceback.print_exc()
        report_failure(runner, "The job runner crashed: " + traceback.format_exc().strip().splitlines()[-1])
        return EXIT_FAILED
    finally:  # every ending, after its last write, releases the lease: the next runner then starts at once
        if getattr(runner, "lease", None) is not None:
            runner.lease.release()


def report_failure(runner: Runner, message: str) -> None:
    """FAILED in the store (the job's, or the job file's folder when the job could not be read)."""
    store = getattr(runner, "store", None)
    if store is None:
        record_failure(fallback_store(runner.args.job), message, runner.endpoint)
        return
    lease = getattr(runner, "lease", None)
    if lease is None or lease.etag is None or lease.lost:  # status.json is the lease holder's to write
        log(f"FAILED not recorded in {store.describe()}: this runner does not hold the config's lease")
        return
    runner.upload_log()
    board = getattr(runner, "board", None)
    if board is None:
        record_failure(store.uri, message, runner.endpoint)
    else:
        board.set(State.FAILED, message=message)


def fail_from_outside(args: argparse.Namespace) -> int:
    store_uri = None
    identity: dict[str, str] = {}
    try:
        job = json.loads(read_object(args.job, args.endpoint_url))
        if isinstance(job, dict):
            store_uri = job.get("store")
            identity = {k: job[k] for k in ("sweep", "config") if isinstance(job.get(k), str)}
    except (StorageError, ValueError):
        pass
    if args.stopped:
        record_failure(
            store_uri or fallback_store(args.job),
            args.stopped,
            args.endpoint_url,
            State.STOPPED,
            STOP_CAUSES["scaleIn"],
            identity,
        )
        print(f"spot-sweep job: {args.stopped}", file=sys.stderr)
        return EXIT_STOPPED
    record_failure(store_uri or fallback_store(args.job), args.fail, args.endpoint_url, identity=identity)
    print(f"spot-sweep job: {args.fail}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
