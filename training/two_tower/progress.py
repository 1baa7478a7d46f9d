"""Progress: a bar on a terminal, one plain line per interval in a log, and OUT/status.json."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from contract import TRAINER_OUT, TrainerState
from spot_runner.clock import utcnow
from spot_runner.progress_keys import PROGRESS_KEYS

# firstStepAt: seconds since the epoch at the first training step of this process (null before it).
STATUS_KEYS = (*PROGRESS_KEYS, "message", "firstStepAt")
"""OUT/status.json's keys besides state and updatedAt (.ci/CONTRACTS.md); null when unknown."""


def status_doc(state: str, fields: dict[str, Any]) -> dict[str, Any]:
    """OUT/status.json's content: every contract key present (null when unknown), plus ``fields``."""
    doc: dict[str, Any] = dict.fromkeys(STATUS_KEYS)
    doc.update(fields)
    doc.update(state=state, updatedAt=utcnow())
    return doc


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


class Progress:
    """Reports on rank 0 only; ``total_steps`` counts micro-batches over all folds and epochs, and the final
    model's pass (fold == folds in status.json) when there is one."""

    def __init__(
        self,
        out_dir: Path,
        enabled: bool,
        folds: int,
        epochs: int,
        total_steps: int,
        interval_s: float = 10.0,
        stream: TextIO | None = None,
    ):
        self.out_dir, self.enabled, self.folds, self.epochs = out_dir, enabled, folds, epochs
        self.total_steps = max(total_steps, 1)
        self.interval_s = interval_s
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._bar_open = False
        self._start_time = time.monotonic()
        self._start_done = 0
        self.state: dict[str, Any] = {}

    def resume_from(self, done_steps: int) -> None:
        """ETA and examples/s count only the steps run by this process."""
        self._start_done = done_steps
        self._start_time = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s

    def update(
        self,
        *,
        fold: int,
        epoch: int,
        step: int,
        done_steps: int,
        loss: float | None,
        examples_per_second: float,
        force: bool = False,
    ) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        progress = min(done_steps / self.total_steps, 1.0)
        rate = (done_steps - self._start_done) / max(now - self._start_time, 1e-9)
        eta = (self.total_steps - done_steps) / rate if rate > 0 else None
        # Kept in every later status (write_status merges): the job runner reads when training really began
        # (results.json job.setup firstStepAt) from whichever status it sees last, however short the run.
        first = {} if self.state.get("firstStepAt") is not None or step <= 0 else {"firstStepAt": time.time()}
        self.write_status(
            TrainerState.TRAINING,
            **first,
            fold=fold,
            epoch=epoch,
            step=step,
            progress=progress,
            examplesPerSecond=examples_per_second,
            etaSeconds=eta,
            loss=loss,
        )
        text = (
            f"{'final model' if fold >= self.folds else f'fold {fold + 1}/{self.folds}'} "
            f"epoch {epoch + 1}/{self.epochs} step {step} "
            f"loss {loss if loss is None else f'{loss:.4f}'} {examples_per_second:,.0f} ex/s "
            f"ETA {_fmt_seconds(eta)}"
        )
        if self.tty:
            width = 24
            filled = int(progress * width)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {progress:6.1%} {text}\033[K")
            self._bar_open = True
        else:
            self.stream.write(f"progress {progress:6.1%} {text}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A log line; on a terminal it goes above the bar, which the next update redraws."""
        if self.enabled:
            if self._bar_open:
                self.stream.write("\r\033[K")
                self._bar_open = False
            print(text, file=self.stream, flush=True)

    def write_status(self, state: str, **fields: Any) -> None:
        if not self.enabled:
            return
        self.state = status_doc(state, {**self.state, "folds": self.folds, "epochs": self.epochs, **fields})
        write_json_atomic(self.out_dir / TRAINER_OUT["status"], self.state)


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
