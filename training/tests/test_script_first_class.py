"""Script mode on a par with the built-in trainer (issue 12): a declared metric, the script's own
requirements, the launcher, jobs without data, the machine's facts, and resuming from the script's own
checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from jobkit import job_doc, run_job, start_job, wait_for

import contract
from spot_runner.lease import TTL_ENV

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((REPO / "sweeps" / "own-script.json").read_text())["configs"][0]["script"]

SCORED = """\
import json, os
os.makedirs("results", exist_ok=True)
json.dump({"scores": {"ndcg@10": 0.41}, "folds": [0.4, 0.42], "env": {k: v for k, v in os.environ.items()
           if k.startswith("SPOT_SWEEP_")}}, open("results/metrics.json", "w"))
"""


def write_job(tmp_path: Path, code: Path, **script) -> tuple[Path, Path]:
    store = tmp_path / "store"
    spec = {
        "code": str(code),
        "entrypoint": "train.py",
        "args": [],
        "patches": [],
        "results": "results/*.json",
    }
    doc = job_doc(store.as_uri() + "/", None, script={**spec, **script})
    job = store / "job.json"
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(json.dumps(doc))
    return job, store


def code_with(tmp_path: Path, script: str) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(script)
    return code


METRIC = {
    "pointer": "/scores/ndcg@10",
    "name": "ndcg@10",
    "higherIsBetter": True,
    "folds": "/folds",
    "file": None,
}


def failed(done, store: Path, code: int, *needles: str) -> str:
    assert done.returncode == code, done.stderr[-3000:]
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED" and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in status["message"], (needle, status["message"])
    assert not (store / "results.json").exists(), "a failed job leaves no result that looks like success"
    return status["message"]


def test_a_declared_metric_is_read_from_the_results_file_into_results_json(tmp_path):
    job, store = write_job(tmp_path, code_with(tmp_path, SCORED), metric=METRIC)

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((store / "results.json").read_text())
    assert contract.problems("results", results) == []
    metric = results["metric"]
    assert (
        metric["mean"] == 0.41 and metric["folds"] == [0.4, 0.42] and metric["file"] == "results/metrics.json"
    )
    assert abs(metric["std"] - 0.0141421356) < 1e-9  # ddof 1, as the trainer's
    assert metric["name"] == "ndcg@10" and metric["higherIsBetter"] is True


def test_a_script_without_data_or_metric_is_told_the_machine_and_gets_no_data_dir(tmp_path):
    job, store = write_job(tmp_path, code_with(tmp_path, SCORED))

    done = run_job(str(job), tmp_path / "work", env={"SPOT_SWEEP_DATA_DIR": "/stale/from/outside"})

    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((store / "results.json").read_text())
    assert results["metric"] is None
    env = results["results"]["env"]
    assert "SPOT_SWEEP_DATA_DIR" not in env
    assert env["SPOT_SWEEP_INSTANCE_TYPE"] == "local" and env["SPOT_SWEEP_DEVICE"] == "cpu"
    assert (
        env["SPOT_SWEEP_GPU_MODEL"] == ""
        and env["SPOT_SWEEP_GPU_MEMORY_GB"] == ""
        and env["SPOT_SWEEP_GPUS"] == "0"
    )
    assert Path(env["SPOT_SWEEP_CHECKPOINT_DIR"]).is_absolute()


def test_fails_when_the_declared_metric_is_missing_naming_the_file_the_pointer_and_the_fix(tmp_path):
    job, store = write_job(tmp_path, code_with(tmp_path, SCORED), metric={**METRIC, "pointer": "/scores/mrr"})

    done = run_job(str(job), tmp_path / "work")

    message = failed(done, store, 1, "results/metrics.json", "'/scores/mrr'", "has no key 'mrr'", "Fix:")
    assert "'ndcg@10'" in message, "the keys that are there are named"


def test_fails_when_the_declared_metric_or_a_fold_is_not_a_number(tmp_path):
    code = code_with(tmp_path, SCORED.replace('"ndcg@10": 0.41', '"ndcg@10": "0.41"'))
    job, store = write_job(tmp_path, code, metric=METRIC)
    failed(run_job(str(job), tmp_path / "work"), store, 1, "'/scores/ndcg@10'", "not a finite number", "Fix:")

    shutil.rmtree(tmp_path / "store")
    code = code_with(tmp_path, SCORED.replace("[0.4, 0.42]", "[0.4, None]"))
    job, store = write_job(tmp_path, code, metric=METRIC)
    failed(run_job(str(job), tmp_path / "work2"), store, 1, "script.metric.folds", "'/folds'", "Fix:")


def test_fails_when_the_metric_file_is_not_known_or_missing(tmp_path):
    two = SCORED + 'json.dump({}, open("results/other.json", "w"))\n'
    job, store = write_job(tmp_path, code_with(tmp_path, two), metric=METRIC)
    failed(run_job(str(job), tmp_path / "work"), store, 1, "collected 2 JSON file(s)", "script.metric.file")

    shutil.rmtree(tmp_path / "store")
    job, store = write_job(
        tmp_path, code_with(tmp_path, SCORED), metric={**METRIC, "file": "results/none.json"}
    )
    failed(run_job(str(job), tmp_path / "work2"), store, 1, "'results/none.json' does not exist")


def test_launcher_python_runs_one_process_even_when_torchrun_would_run_several(tmp_path):
    script = SCORED + 'print("LOCAL_WORLD_SIZE", os.environ.get("LOCAL_WORLD_SIZE"), flush=True)\n'
    job, store = write_job(tmp_path, code_with(tmp_path, script), launcher="python")

    done = run_job(str(job), tmp_path / "work", env={"SPOT_SWEEP_NPROC": "2"})

    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOCAL_WORLD_SIZE None" in done.stderr and "torch.distributed.run" not in done.stderr


def requirement_code(tmp_path: Path) -> Path:
    """A script that imports its own requirement, installed from a wheel beside it (offline)."""
    code = code_with(tmp_path, "import tinyreq\n" + SCORED)
    shutil.copytree(REPO / "sweeps" / "own-script" / "wheels", code / "wheels")
    (code / "requirements.txt").write_text("--find-links ./wheels\ntinyreq==1.0.0\n")
    return code


def test_requirements_are_installed_then_come_from_the_wheel_cache_and_the_venv_is_reused(tmp_path):
    code = requirement_code(tmp_path)
    cache = tmp_path / "cache"
    env = {"SPOT_SWEEP_WHEEL_CACHE": cache.as_uri() + "/"}
    job, store = write_job(tmp_path, code, requirements="requirements.txt")

    done = run_job(str(job), tmp_path / "work", env=env, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "installed 1 package(s)" in done.stderr and list(cache.glob("script/*/tinyreq-1.0.0-*.whl"))
    phases = [p["name"] for p in json.loads((store / "results.json").read_text())["job"]["setup"]["phases"]]
    assert "script-requirements" in phases

    # A replacement instance: a fresh work directory, and the wheel is no longer beside the script.
    shutil.rmtree(code / "wheels")
    shutil.rmtree(store)
    job, store = write_job(tmp_path, code, requirements="requirements.txt")
    (code / "requirements.txt").write_text("--find-links ./wheels\ntinyreq==1.0.0\n")
    again = run_job(str(job), tmp_path / "work-2", env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "installed from the wheel cache" in again.stderr

    shutil.rmtree(store)
    job, store = write_job(tmp_path, code, requirements="requirements.txt")
    resumed = run_job(str(job), tmp_path / "work-2", env=env, timeout=300)
    assert resumed.returncode == 0 and "reusing" in resumed.stderr, resumed.stderr[-3000:]


def test_fails_when_pip_cannot_install_the_requirements_naming_the_file_and_pips_last_lines(tmp_path):
    code = code_with(tmp_path, SCORED)
    (code / "requirements.txt").write_text("--no-index\nno-such-package-spot-sweep==9.9\n")
    job, store = write_job(tmp_path, code, requirements="requirements.txt")

    done = run_job(str(job), tmp_path / "work", timeout=300)

    message = failed(done, store, 1, "script.requirements", "'requirements.txt'", "pip's last lines", "Fix:")
    assert "no-such-package-spot-sweep" in message


def test_fails_when_the_requirements_file_is_missing(tmp_path):
    job, store = write_job(tmp_path, code_with(tmp_path, SCORED), requirements="req/missing.txt")

    failed(run_job(str(job), tmp_path / "work"), store, 2, "'req/missing.txt' does not exist", "Fix:")


def test_the_example_resumes_from_its_own_checkpoint_after_a_kill_9_and_ranks_by_its_ndcg(tmp_path):
    """sweeps/own-script: run by the real runner, killed (runner and script, kill -9) after a fold, then run
    again as a replacement instance would: it goes on from the script's checkpoint, not from fold 0."""
    store = tmp_path / "store"
    # As lib/spec/job.ts renders the example (test/spec/job.test.ts checks the same defaults).
    script = {**EXAMPLE, "code": str(REPO / "sweeps" / "own-script"), "args": []}
    script["metric"] = {"name": "ndcg@10", "higherIsBetter": True, "file": None, **EXAMPLE["metric"]}
    del script["codeDir"]
    doc = job_doc(store.as_uri() + "/", None, script=script)
    job = store / "job.json"
    job.parent.mkdir(parents=True)
    job.write_text(json.dumps(doc))
    env = {TTL_ENV: "2", "OWN_SCRIPT_SECONDS_PER_FOLD": "2"}
    first = start_job(str(job), tmp_path / "work-1", "--sync-seconds", "0.3", env=env)
    saved = store / "checkpoints" / "script" / "folds.json"
    wait_for(
        lambda: saved.is_file() and len(json.loads(saved.read_text())) >= 1, "a fold checkpoint", 300, first
    )
    child = int((tmp_path / "work-1" / "child.pid").read_text())
    os.kill(first.pid, signal.SIGKILL)
    os.killpg(child, signal.SIGKILL)
    first.communicate(timeout=30)
    kept = len(json.loads(saved.read_text()))
    assert kept < 5, "the kill came before the script finished"

    done = run_job(str(job), tmp_path / "work-2", "--sync-seconds", "0.3", env={TTL_ENV: "2"}, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        f"resuming at fold {kept} of 5" in done.stderr
        and "starting at fold 0" not in done.stderr.split("=== attempt 2")[-1]
    )
    results = json.loads((store / "results.json").read_text())
    assert contract.problems("results", results) == []
    assert len(results["metric"]["folds"]) == 5 and results["metric"]["name"] == "ndcg@10"
    assert 0 < results["metric"]["mean"] <= 1
    assert "patch 0: train.py: replaced 1 occurrence(s)" in (store / "train.log").read_text()
