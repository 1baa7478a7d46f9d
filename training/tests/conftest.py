"""Shared fixtures: tiny synthetic datasets and helpers to run the trainer in-process or as a subprocess.

Kept generic so other test modules (e.g. the job runner's) can reuse them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from two_tower import synth

TRAINING_DIR = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)

TIMING_KEYS = ("totalSeconds", "examplesPerSecond")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a trainer subprocess: the package importable, one thread (deterministic, and the
    machine is shared), no real IMDS."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(TRAINING_DIR),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        SPOT_SWEEP_IMDS_ENDPOINT="http://127.0.0.1:9",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def trainer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "two_tower.train", *args]


def run_trainer(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        trainer_command(*args),
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=TRAINING_DIR,
    )


def without_timing(results: dict) -> dict:
    """results.json minus the fields that measure wall time (they differ between any two runs)."""
    out = {k: v for k, v in results.items() if k not in TIMING_KEYS}
    out["folds"] = [{k: v for k, v in f.items() if k != "seconds"} for f in results["folds"]]
    if results.get("finalModel"):
        out["finalModel"] = {k: v for k, v in results["finalModel"].items() if k != "seconds"}
    return out


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def edit_pairs(data: Path, edit) -> None:
    """Change a dataset's pairs.csv in place: ``edit`` gets its lines (header first) as a list to change."""
    path = data / "pairs.csv"
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")


def make_relevance_negative(data: Path, line: int = 2) -> None:
    """Bad input the trainer refuses: relevance -1 on ``line`` of pairs.csv (the header is line 1)."""

    def edit(lines: list[str]) -> None:
        cells = lines[line - 1].split(",")
        cells[lines[0].split(",").index("relevance")] = "-1"
        lines[line - 1] = ",".join(cells)

    edit_pairs(data, edit)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """400 queries, 800 docs, 16-d embeddings, 10 judged docs per query: trains in about a second on CPU."""
    return synth.generate(
        tmp_path_factory.mktemp("tiny") / "data",
        queries=400,
        docs=800,
        dim=16,
        latent=8,
        candidates=10,
        positives=2,
        seed=1,
    )


@pytest.fixture
def make_dataset(tmp_path):
    """Factory: a fresh synthetic dataset directory (in the test's tmp_path) that a test may then break."""

    def make(name: str = "data", **kwargs) -> Path:
        params = dict(queries=60, docs=120, dim=8, latent=4, candidates=6, positives=2, seed=3)
        params.update(kwargs)
        return synth.generate(tmp_path / name, **params)

    return make


@pytest.fixture
def tmpfs(tmp_path):
    """Factory: mount a fresh tmpfs of ``size`` (e.g. "1m") at tmp_path/<name>, read-only with
    ``readonly=True``, unmounted after the test. A small one is a full disk on demand; a read-only one is
    unwritable even for root (who ignores chmod). Skips when this process may not mount."""
    mounted: list[Path] = []

    def mount(name: str, size: str, readonly: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size}" + (",ro" if readonly else "")
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", str(point)], check=False)
