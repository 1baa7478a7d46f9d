"""Setup time, measured: results.json ``job.setup`` of the attempt that finished (results.schema.json
``$defs/setup``), the figures that `plan`'s setup minutes per GPU model (lib/cost/throughput.ts) are
calibrated from.

- ``phases``: the bootstrap's, read from the JSON file it names in env names.json ``env.setupPhases``
  (``{"phases": [{"name": ..., "seconds": ...}]}``), then the runner's own (``SetupClock.phase``).
- ``bootedAt``: the machine's boot time, Linux ``/proc/stat`` ``btime``.
- ``firstStepAt``: trainer mode, when the trainer's OUT/status.json first showed a training step (``step`` >
  0), which it writes at its first step (two_tower.progress: the first update is always due); script mode,
  the child's start, as the runner cannot see inside a script.

Nothing here may fail a job: a missing or damaged phase file, an unknown boot time or a first step never
seen give fewer phases or null, with a log line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from contract import NAMES, TrainerState, schema

from .runlog import log

PHASES_ENV = NAMES["env"]["setupPhases"]
PROC_STAT = Path("/proc/stat")
WATCH_SECONDS = 0.5
"""How often the trainer's status file is read until its first step shows: the error of firstStepAt."""
PHASE_NAME = re.compile(
    schema("results")["$defs"]["setup"]["properties"]["phases"]["items"]["properties"]["name"]["pattern"]
)


def iso(epoch: float) -> str:
    """ISO 8601 UTC to the second, the format of status.json (clock.utcnow)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def boot_time(stat: Path = PROC_STAT) -> float | None:
    """Seconds since the epoch at which the machine booted: the ``btime`` line of /proc/stat (proc_stat(5):
    "boot time, in seconds since the Epoch"); None where there is none (not Linux).
    @see https://man7.org/linux/man-pages/man5/proc_stat.5.html"""
    try:
        for row in stat.read_text().splitlines():
            key, _, value = row.partition(" ")
            if key == "btime":
                return float(value.strip())
    except (OSError, ValueError):
        pass
    return None


def bootstrap_phases(env: dict | None = None) -> list[dict]:
    """The bootstrap's timed phases, in order, from the file env ``PHASES_ENV`` names; [] without one. An
    entry that is not a name and a finite, non-negative number of seconds is left out, with a warning."""
    path = (os.environ if env is None else env).get(PHASES_ENV)
    if not path:
        return []
    try:
        doc = json.loads(Path(path).read_text())
        entries = doc["phases"]
        if not isinstance(entries, list):
            raise TypeError("`phases` is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        log(f"warning: the bootstrap's phase times ({PHASES_ENV}={path}) cannot be read ({e}); not recorded")
        return []
    phases = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        seconds = entry.get("seconds") if isinstance(entry, dict) else None
        if (
            isinstance(name, str)
            and PHASE_NAME.fullmatch(name)
            and isinstance(seconds, (int, float))
            and not isinstance(seconds, bool)
            and _finite(seconds)
            and seconds >= 0
        ):
            phases.append({"name": name, "seconds": seconds})
        else:
            log(f"warning: {path}: phase entry {entry!r} is not a name and seconds >= 0; left out")
    return phases


def _finite(x: int | float) -> bool:
    """A number JSON can carry as seconds: an integer too large for a float is not (math.isfinite raises)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


class FirstStepWatch:
    """Reads the trainer's OUT/status.json every ``interval_s`` on a thread of its own until it shows a
    training step, then keeps the file's modification time (the trainer writes it at that step) and stops.
    Only a status written by this attempt's trainer counts: the runner removes the previous one first."""

    def __init__(self, status_path: Path, interval_s: float = WATCH_SECONDS):
        self.path = status_path
        self.interval_s = interval_s
        self.seen_at: float | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="first-step")

    def start(self) -> FirstStepWatch:
        self._thread.start()
        return self

    def halt(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
        self.look()  # the trainer's last status still carries its firstStepAt

    def _run(self) -> None:
        while not self._halt.is_set() and not self.look():
            self._halt.wait(self.interval_s)

    def look(self) -> bool:
        """True once a training step was seen (now or before)."""
        if self.seen_at is not None:
            return True
        try:
            written = self.path.stat().st_mtime
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):  # not there yet, or caught mid-write
            return False
        if not isinstance(doc, dict):
            return False
        first = doc.get("firstStepAt")  # the trainer's own clock at its first step (two_tower/progress.py)
        if isinstance(first, (int, float)) and not isinstance(first, bool) and first > 0:
            self.seen_at = float(first)
            return True
        step = doc.get("step")
        if doc.get("state") == TrainerState.TRAINING and isinstance(step, int) and step > 0:
            self.seen_at = written
            return True
        return False


class SetupClock:
    """The setup figures of one attempt: the bootstrap's phases, then each of the runner's as it ends."""

    def __init__(self, env: dict | None = None):
        self.phases = bootstrap_phases(env)
        self.booted = boot_time()
        self.first_step: float | None = None

    @contextlib.contextmanager
    def phase(self, name: str):
        """Time the block as phase ``name``; a block that raises is not recorded (the job fails anyway)."""
        started = time.monotonic()
        yield
        self.phases.append({"name": name, "seconds": round(time.monotonic() - started, 3)})

    def saw_first_step(self, at: float | None) -> None:
        if self.first_step is None and at is not None:
            self.first_step = at

    def section(self) -> dict:
        """results.json ``job.setup``."""
        span = None
        if self.booted is not None and self.first_step is not None and self.first_step >= self.booted:
            span = round(self.first_step - self.booted, 1)
        if self.first_step is None:
            log("setup: no training step was seen while the child ran; firstStepAt is null")
        return {
            "phases": list(self.phases),
            "bootedAt": iso(self.booted) if self.booted is not None else None,
            "firstStepAt": iso(self.first_step) if self.first_step is not None else None,
            "bootToFirstStepSeconds": span,
        }
