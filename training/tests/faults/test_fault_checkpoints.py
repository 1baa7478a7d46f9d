"""Damaged checkpoints in the store before a resume: bytes flipped in place (same size), truncated,
digest file deleted, digest file of garbage, every checkpoint damaged at once. The runner fetches them on
a fresh work directory (a replacement instance); the trainer must skip each bad one with a logged line
naming it and resume from the previous one, or from scratch, to the uninterrupted run's results: never
SUCCEEDED with other numbers."""

from __future__ import annotations

import io
import re

import pytest
import torch

from .faultkit import (
    MODULE_TIMEOUT,
    checkpoint_names,
    has_traceback,
    in_parallel,
    kill_strays,
    local_store,
    metrics,
    outcome,
    rng,
    run,
    seed_store,
)

SKIP_WORDS = ("skip", "damaged", "corrupt", "invalid", "unreadable", "ignor")

pytestmark = pytest.mark.timeout(MODULE_TIMEOUT)


def flip(data: bytes, r) -> bytes:
    """16 bytes inverted in the middle half of the file: same size, different content."""
    out = bytearray(data)
    start = r.randrange(len(data) // 4, len(data) * 3 // 4 - 16)
    for i in range(start, start + 16):
        out[i] ^= 0xFF
    return bytes(out)


def damage(variant: str, files: dict[str, bytes], r) -> tuple[dict[str, bytes | None], list[str]]:
    """The store objects to replace (None: delete) and the checkpoint names that must be skipped. Four kinds
    of damage in three runs (each run costs a trainer start): the newest flipped in place; the newest
    without its digest; the newest truncated and the older one's digest garbage, so nothing is left to
    resume from."""
    older, newest = (f"checkpoints/{n}" for n in checkpoint_names(files))
    if variant == "flipped":
        return {newest: flip(files[newest], r)}, [newest]
    if variant == "digest-deleted":
        return {newest + ".sha256": None}, [newest]
    if variant == "truncated-and-garbage-digest":
        garbage = bytes(r.randrange(256) for _ in range(40))
        return {newest: files[newest][: len(files[newest]) // 2], older + ".sha256": garbage}, [older, newest]
    raise ValueError(variant)


VARIANTS = ("flipped", "digest-deleted", "truncated-and-garbage-digest")


def resume_after_damage(root, baseline, variant: str) -> dict:
    job, view = local_store(root, f"ckpt-{variant}", baseline.data)
    files = seed_store(view, baseline.interrupted)
    changes, bad = damage(variant, files, rng("checkpoints", variant))
    for key, data in changes.items():
        if data is None:
            (view.root / key).unlink()
        else:
            view.put(key, data)
    kept = [k for k in (f"checkpoints/{n}" for n in checkpoint_names(files)) if k not in bad]
    try:
        done = run(job, root / "work")
    finally:
        kill_strays(root / "work")
    return {"run": done, "view": view, "bad": bad, "kept": kept, "files": files}


@pytest.fixture(scope="module")
def resumed(baseline, tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints").resolve()
    return in_parallel({v: (lambda v=v: resume_after_damage(root / v, baseline, v)) for v in VARIANTS})


def state_of(checkpoint: bytes) -> tuple[int, int, int]:
    """(fold, epoch, step) a resume from this checkpoint starts at, 1-based as the trainer logs it."""
    state = torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=False)
    return state["fold"] + 1, state["epoch"] + 1, state["step"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_resumes_past_a_damaged_checkpoint_to_identical_results(resumed, baseline, variant):
    case = outcome(resumed, variant)
    done, view = case["run"], case["view"]
    log = view.log()
    assert done.rc == 0, f"exit {done.rc} (hung: {done.hung}):\n{done.tail(40)}"
    assert not has_traceback(done.output), done.tail(40)
    status = view.json("status.json")
    assert status["state"] == "SUCCEEDED" and status["attempts"] == 2, status
    assert metrics(view.json("results.json")) == baseline.oracle, (
        "SUCCEEDED with other numbers than the reference"
    )
    for key in case["bad"]:
        name = key.split("/")[-1]
        lines = [
            line for line in log.splitlines() if name in line and any(w in line.lower() for w in SKIP_WORDS)
        ]
        assert lines, f"no logged line says {name} was skipped:\n{log[-4000:]}"
    resumes = re.findall(r"resume: from fold (\d+) epoch (\d+) step (\d+)", log.split("=== attempt 2")[-1])
    if case["kept"]:
        expected = state_of(case["files"][case["kept"][-1]])
        assert resumes and tuple(map(int, resumes[0])) == expected, (
            f"expected a resume from {case['kept'][-1]} at fold/epoch/step {expected}, got {resumes}"
        )
    else:
        assert not resumes, f"every checkpoint was damaged, yet the trainer resumed: {resumes}"
