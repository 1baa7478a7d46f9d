"""spot_runner is the torch-free job runner: every one of its modules imports on a Python where torch (and the
trainer, two_tower) cannot be imported, and ``--fail`` works there (the bootstrap calls it when the instance
cannot run the job, e.g. when no Python has torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jobkit import TRAINING, child_env

RUNNER = TRAINING / "spot_runner"
MODULES = sorted(
    f"spot_runner.{p.stem}" if p.stem != "__init__" else "spot_runner" for p in RUNNER.glob("*.py")
)
BLOCK = "import sys; sys.modules['torch'] = None; sys.modules['two_tower'] = None; "


def python(code: str, cwd: Path = TRAINING) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=child_env(), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_every_module_is_listed():
    assert {"spot_runner.job", "spot_runner.jobfile", "spot_runner.spot_notice", "spot_runner.exits"} <= set(
        MODULES
    )
    assert len(MODULES) >= 15


def test_every_spot_runner_module_imports_without_torch():
    code = (
        BLOCK
        + "\n".join(f"import {m}" for m in MODULES)
        + (
            "\nloaded = [m for m, mod in sys.modules.items() if mod is not None"
            " and m.split('.')[0] in ('torch', 'two_tower')]"
            "\nprint('loaded:', loaded)"
        )
    )

    done = python(code)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded: []"


def test_the_blocked_torch_really_is_blocked():
    done = python(BLOCK + "import torch")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_fail_records_failed_without_torch(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    job = store / "job.json"
    job.write_text(json.dumps({"store": store.as_uri() + "/"}))
    code = BLOCK + (
        "from spot_runner.job import main; "
        f"sys.exit(main(['--job', {str(job)!r}, '--fail', 'no Python with torch on this instance']))"
    )

    done = python(code)

    assert done.returncode == 1, done.stderr
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED" and status["message"] == "no Python with torch on this instance"
