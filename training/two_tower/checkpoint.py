"""Atomic checkpoints: written to a temporary name, fsynced, then renamed; the newest two are kept.

Only complete files ever carry the final name ``ckpt-<seq>.pt`` (os.replace is atomic on POSIX), so a kill
at any moment leaves at worst a stray ``.tmp`` that is ignored and removed by the next save.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP = 2
"""Complete checkpoints kept (torchtitan keeps at least two: the newest may be on a disk that just died)."""


def checkpoint_files(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    return sorted(Path(directory).glob("ckpt-*.pt"))


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stray in directory.glob("*.tmp"):
        stray.unlink(missing_ok=True)
    existing = checkpoint_files(directory)
    seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
    final = directory / f"ckpt-{seq:08d}.pt"
    tmp = final.with_suffix(".pt.tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    for old in checkpoint_files(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return final


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads; None when there is none."""
    for path in reversed(checkpoint_files(directory)):
        try:
            # weights_only=False: the state holds RNG states and plain Python containers we wrote ourselves.
            return torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
            print(f"checkpoint: {path.name} is unreadable ({err}); trying an older one", flush=True)
    return None


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    # A resumed run may land on a machine with another GPU count (the ASG mixes instance types).
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
