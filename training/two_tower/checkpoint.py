"""Atomic, verified checkpoints: written to a temporary name, fsynced, then renamed; the newest two are kept.

Only complete files ever carry the final name ``ckpt-<seq>.pt`` (os.replace is atomic on POSIX), so a kill
at any moment leaves at worst a stray ``.tmp`` that is ignored and removed by the next save. Beside each
one, ``ckpt-<seq>.pt.sha256`` holds the SHA-256 of its bytes, written before the checkpoint gets its final
name; a checkpoint whose bytes no longer match (damaged in place, same size or not) or that has no digest
is skipped on load with a logged line, and the previous one is used. The job runner mirrors both files.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract import TRAINER_OUT
from contract import sha256_file as sha256_of

KEEP = 2
"""Complete checkpoints kept (torchtitan keeps at least two: the newest may be on a disk that just died)."""


DIGEST_SUFFIX = TRAINER_OUT["checkpointDigestSuffix"]


def checkpoint_files(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    return sorted(Path(directory).glob("ckpt-*.pt"))


def digest_file(checkpoint: Path) -> Path:
    """Where a checkpoint's SHA-256 is kept: ``ckpt-<seq>.pt.sha256``."""
    return checkpoint.with_name(checkpoint.name + DIGEST_SUFFIX)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    # The digest first: a checkpoint that has its final name always has its digest beside it.
    _write_atomic(digest_file(final), (sha256_of(tmp) + "\n").encode())
    os.replace(tmp, final)
    for old in checkpoint_files(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
        digest_file(old).unlink(missing_ok=True)
    kept = {digest_file(p).name for p in checkpoint_files(directory)}
    for orphan in directory.glob("ckpt-*.pt" + DIGEST_SUFFIX):  # a kill between digest and rename
        if orphan.name not in kept:
            orphan.unlink(missing_ok=True)
    return final


def verify(path: Path) -> str | None:
    """Why the checkpoint cannot be trusted, or None when its bytes match its recorded digest."""
    try:
        recorded = digest_file(path).read_text().strip()
    except FileNotFoundError:
        return f"it has no digest ({digest_file(path).name})"
    except (OSError, UnicodeDecodeError) as err:
        return f"its digest is unreadable ({err})"
    actual = sha256_of(path)
    if actual != recorded:
        return (
            f"its bytes do not match its digest (sha256 {actual[:12]}…, recorded {recorded[:12]}…): damaged"
        )
    return None


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest checkpoint that verifies and loads; None when there is none."""
    for path in reversed(checkpoint_files(directory)):
        problem = verify(path)
        if problem is not None:
            print(f"checkpoint: {path.name} is skipped: {problem}; trying an older one", flush=True)
            continue
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
