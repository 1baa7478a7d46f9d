"""Full and read-only disks: the work directory on a tiny tmpfs (the data, or a checkpoint, does not fit)
or on a read-only one. The promise: a clear failure (exit 1 or 2, a sentence naming the path and the cause,
no traceback), FAILED in the store, no results.json, and nothing the store already held lost: an earlier
attempt's checkpoints stay byte-identical (or move to history/), its status history and train.log stay
as the start of the new ones.

Needs root (mount -t tmpfs); skipped with the reason otherwise. Every mount is undone in a finally.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest

from .faultkit import (
    CAUSES,
    MODULE_TIMEOUT,
    Problems,
    StoreView,
    has_traceback,
    in_parallel,
    kept_or_in_history,
    kill_strays,
    local_store,
    outcome,
    run,
    s3_store,
    seed_store,
)

pytestmark = pytest.mark.timeout(MODULE_TIMEOUT)


@contextlib.contextmanager
def mounted_tmpfs(mountpoint: Path, size: str, read_only: bool = False):
    """A tmpfs of ``size`` at ``mountpoint`` for the with-block (conftest's ``tmpfs`` fixture is per test;
    these mounts live in a module fixture that runs the scenarios side by side)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)], check=True, capture_output=True
    )
    try:
        yield mountpoint
    finally:
        kill_strays(mountpoint)  # nothing may keep the mount busy
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory):
    probe = tmp_path_factory.mktemp("mount-probe")
    try:
        with mounted_tmpfs(probe / "m", "64k"):
            pass
    except (subprocess.CalledProcessError, OSError) as e:
        stderr = getattr(e, "stderr", b"") or b""
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {stderr.decode().strip() or e}")


def on_disk(root: Path, view: StoreView, job: str, seeded: dict, size: str, read_only=False, work="") -> dict:
    """Run the job with its work directory on a fresh tmpfs (``work``: a folder under the mount)."""
    mount = root / "disk"
    with mounted_tmpfs(mount, size, read_only):
        done = run(job, mount / work if work else mount)
    return {"run": done, "view": view, "seeded": seeded, "after": view.files(), "path": str(mount)}


def data_does_not_fit(root, bucket, s3_data, baseline) -> dict:
    job, view = s3_store(bucket, "disk-data-full", s3_data)
    return on_disk(root, view, job, seed_store(view, baseline.interrupted), "64k")


def fetched_checkpoint_does_not_fit(root, baseline) -> dict:
    job, view = local_store(root, "disk-ckpt-fetch-full", baseline.data)
    return on_disk(root, view, job, seed_store(view, baseline.interrupted), "48k")


def new_checkpoint_does_not_fit(root, baseline) -> dict:
    """No checkpoint in the store: the trainer starts and cannot write its first one (~28 KB)."""
    job, view = local_store(root, "disk-ckpt-save-full", baseline.data)
    seeded = seed_store(view, baseline.interrupted, keep=lambda key: not key.startswith("checkpoints/"))
    return on_disk(root, view, job, seeded, "48k")


def read_only(root, baseline) -> dict:
    job, view = local_store(root, "disk-read-only", baseline.data)
    return on_disk(root, view, job, seed_store(view, baseline.interrupted), "1m", read_only=True, work="work")


@pytest.fixture(scope="module")
def disks(can_mount, bucket, s3_data, baseline, tmp_path_factory):
    root = tmp_path_factory.mktemp("disks").resolve()
    return in_parallel(
        {
            "data-full": lambda: data_does_not_fit(root / "data-full", bucket, s3_data, baseline),
            "fetch-full": lambda: fetched_checkpoint_does_not_fit(root / "fetch-full", baseline),
            "save-full": lambda: new_checkpoint_does_not_fit(root / "save-full", baseline),
            "read-only": lambda: read_only(root / "read-only", baseline),
        }
    )


@pytest.mark.parametrize("case", ["data-full", "fetch-full", "save-full", "read-only"])
def test_fails_clearly_and_loses_nothing_when_the_disk_is_full_or_read_only(disks, case):
    c = outcome(disks, case)
    done, view, seeded, after = c["run"], c["view"], c["seeded"], c["after"]
    print(f"{case}: {done}")
    assert not done.hung, f"the runner hung:\n{done.tail(40)}"
    p = Problems()
    p.check(done.rc in (1, 2), f"exit {done.rc}, not 1 or 2")
    p.check(not has_traceback(done.output), "a traceback instead of a sentence")
    sentences = [
        line
        for line in done.output.splitlines()
        if c["path"] in line and any(w in line.lower() for w in CAUSES)
    ]
    p.check(sentences, f"no line names the path {c['path']} and the cause")
    status = view.json("status.json")
    p.check(status["state"] == "FAILED", f"status.json says {status['state']}, not FAILED")
    message = status.get("message", "")
    p.check(any(w in message.lower() for w in CAUSES), f"the FAILED message lacks the cause: {message}")
    p.check("results.json" not in after, "results.json after a failed run")
    checkpoints = [k for k in seeded if k.startswith("checkpoints/")]
    p.check(not kept_or_in_history(seeded, after, checkpoints), "an earlier checkpoint was lost")
    old_history = json.loads(seeded["status.json"])["history"]
    p.check(status["history"][: len(old_history)] == old_history, "the earlier status history was lost")
    p.check((after.get("train.log") or b"").startswith(seeded["train.log"]), "the earlier train.log was lost")
    p.assert_none(done.tail(40))
