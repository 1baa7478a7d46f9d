"""Setup time, measured: bootstrap.sh times each phase into a file it hands to the job runner, and the runner
writes results.json ``job.setup`` (the phases, its own fetches, the boot time, the first training step)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from jobkit import imds, job_doc, run_job  # noqa: F401 - fixture
from test_bootstrap import BOOTSTRAP, Instance
from test_user_script import make_code, script_job

import contract
from spot_runner.setup_times import PHASES_ENV, FirstStepWatch, boot_time, bootstrap_phases

SLOW_PIP_SECONDS = 2.0  # well above what a loaded CI machine takes for the metadata phase (0.6 s seen)

RECORDING_PYTHON = r"""
import json, os, sys, time

args = sys.argv[1:]
if args[:2] == ["-m", "pip"] and "-r" in args:  # the requirements phase takes a measurable while
    time.sleep(float(os.environ["SLOW_PIP_SECONDS"]))
if args[:2] == ["-m", "spot_runner.job"] and "--fail" not in args:
    path = os.environ.get(os.environ["PHASES_ENV_NAME"])
    phases = json.load(open(path)) if path and os.path.isfile(path) else None
    with open(os.environ["RUNNER_SAW"], "w") as fh:
        json.dump({"path": path, "file": phases}, fh)
os.execv(STANDIN, [STANDIN, *args])
"""


def parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_bootstrap_times_every_phase_into_a_file_the_runner_gets_by_env(tmp_path, imds):  # noqa: F811
    instance = Instance(tmp_path, imds.url)
    standin = instance.bin / "dlami-python"
    standin.rename(instance.bin / "dlami-python-standin")
    standin.write_text(
        f"#!{sys.executable}\nSTANDIN = {str(instance.bin / 'dlami-python-standin')!r}\n{RECORDING_PYTHON}"
    )
    standin.chmod(0o755)
    saw = tmp_path / "runner-saw.json"

    done = instance.run(
        FAKE_SYSTEM_TORCH="cuda:1",
        SLOW_PIP_SECONDS=str(SLOW_PIP_SECONDS),
        PHASES_ENV_NAME=PHASES_ENV,
        RUNNER_SAW=str(saw),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    handed = json.loads(saw.read_text())
    assert handed["path"] == str(instance.root / "work" / "setup-phases.json")
    # Every phase the bootstrap runs before the runner, in its order, as bootstrap.sh spells them.
    phases_in_script = re.findall(r"^begin (\S+)$", BOOTSTRAP.read_text(), re.MULTILINE)
    assert phases_in_script[-1] == "run"
    phases = handed["file"]["phases"]
    assert [p["name"] for p in phases] == phases_in_script[:-1]
    seconds = {p["name"]: p["seconds"] for p in phases}
    assert all(isinstance(s, (int, float)) and s >= 0 for s in seconds.values())
    assert seconds["requirements"] >= SLOW_PIP_SECONDS, "the requirements phase was not measured"
    assert seconds["metadata"] < seconds["requirements"], "the phases were not told apart"
    assert bootstrap_phases({PHASES_ENV: handed["path"]}) == phases


def test_results_json_records_the_setup_of_the_attempt_with_a_first_step_after_its_start(
    tmp_path, tiny_dataset
):
    store = tmp_path / "store"
    store.mkdir()
    doc = job_doc(store.as_uri() + "/", str(tiny_dataset))
    doc["train"].update(epochs=4)
    (store / "job.json").write_text(json.dumps(doc))
    bootstrap = [{"name": "driver", "seconds": 12.5}, {"name": "python", "seconds": 80.25}]
    phases_file = tmp_path / "setup-phases.json"
    phases_file.write_text(json.dumps({"phases": bootstrap}))

    done = run_job(str(store / "job.json"), tmp_path / "work", env={PHASES_ENV: str(phases_file)})

    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((store / "results.json").read_text())
    assert contract.problems("results", results) == []
    setup = results["job"]["setup"]
    assert setup["phases"][:2] == bootstrap
    assert [p["name"] for p in setup["phases"][2:]] == ["fetch-data", "fetch-checkpoint"]
    assert all(p["seconds"] >= 0 for p in setup["phases"])
    btime = next(
        int(r.split()[1]) for r in Path("/proc/stat").read_text().splitlines() if r.startswith("btime ")
    )
    assert parse_iso(setup["bootedAt"]) == btime
    status = json.loads((store / "status.json").read_text())
    succeeded = next(h["at"] for h in status["history"] if h["state"] == "SUCCEEDED")
    first = parse_iso(setup["firstStepAt"])
    assert parse_iso(status["startedAt"]) <= first <= parse_iso(succeeded)
    assert abs(setup["bootToFirstStepSeconds"] - (first - btime)) < 1


def test_script_mode_counts_the_scripts_start_as_its_first_step(tmp_path):
    code = make_code(tmp_path)
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/")
    before = time.time()

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0, done.stderr[-3000:]
    setup = json.loads((store / "results.json").read_text())["job"]["setup"]
    # no bootstrap here, no data; the script's checkpoint directory is fetched (empty on a first attempt)
    assert [p["name"] for p in setup["phases"]] == ["fetch-code", "fetch-checkpoint"]
    started = re.search(r"\[job (\S+)\] running: ", done.stderr)[1]
    assert int(before) <= parse_iso(setup["firstStepAt"]) <= parse_iso(started)
    assert setup["bootedAt"] is not None and setup["bootToFirstStepSeconds"] > 0


def test_fails_when_a_phase_has_negative_seconds_while_results_without_setup_still_fit():
    script = {
        "version": 1,
        "mode": "script",
        "files": ["results/x.json"],
        "results": None,
        "job": {
            "sweep": "s",
            "config": "c",
            "instanceType": "g5.xlarge",
            "market": "spot",
            "attempts": 1,
            "interruptions": 0,
        },
    }
    assert contract.problems("results", script) == []  # results of runners before job.setup
    setup = {
        "phases": [{"name": "driver", "seconds": -1}],
        "bootedAt": None,
        "firstStepAt": None,
        "bootToFirstStepSeconds": None,
    }
    measured = {**script, "job": {**script["job"], "setup": setup}}
    assert contract.problems("results", measured) != []
    setup["phases"][0]["seconds"] = 1.5
    assert contract.problems("results", measured) == []


def test_a_damaged_phase_file_costs_the_bootstrap_phases_never_the_job(tmp_path, capsys):
    damaged = tmp_path / "setup-phases.json"
    damaged.write_text('{"phases": [{"name": "driver", "seconds": 1.5}')
    assert bootstrap_phases({PHASES_ENV: str(damaged)}) == []
    mixed = tmp_path / "mixed.json"
    mixed.write_text(
        json.dumps({"phases": [{"name": "driver", "seconds": 1.5}, {"name": "job", "seconds": "x"}]})
    )
    assert bootstrap_phases({PHASES_ENV: str(mixed)}) == [{"name": "driver", "seconds": 1.5}]
    huge = tmp_path / "huge.json"  # an integer no float holds: math.isfinite would raise OverflowError
    huge.write_text(
        '{"phases": [{"name": "driver", "seconds": 1' + "0" * 400 + '}, {"name": "job", "seconds": 2}]}'
    )
    assert bootstrap_phases({PHASES_ENV: str(huge)}) == [{"name": "job", "seconds": 2}]
    assert bootstrap_phases({PHASES_ENV: str(tmp_path / "missing.json")}) == []
    assert bootstrap_phases({}) == []
    err = capsys.readouterr().err
    assert str(damaged) in err and "'seconds': 'x'" in err and "missing.json" in err


def test_the_first_step_is_a_training_status_with_a_step_not_the_trainers_start_or_its_end(tmp_path):
    status = tmp_path / "status.json"
    watch = FirstStepWatch(status)
    assert not watch.look()  # no status yet
    status.write_text(json.dumps({"state": "TRAINING", "step": None}))
    assert not watch.look()  # the trainer's start
    status.write_text(json.dumps({"state": "SUCCEEDED", "step": 40}))
    assert not watch.look()  # the end: the first step was missed, not taken for the end
    status.write_text(json.dumps({"state": "TRAINING", "step": 1}))
    os.utime(status, (1_800_000_000, 1_800_000_000))
    assert watch.look() and watch.seen_at == 1_800_000_000
    status.write_text(json.dumps({"state": "TRAINING", "step": 9}))
    assert watch.look() and watch.seen_at == 1_800_000_000  # the first one stays


def test_boot_time_is_the_btime_of_proc_stat_or_none(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\nbtime 1764336000\nprocesses 9\n")
    assert boot_time(stat) == 1764336000
    stat.write_text("cpu  1 2 3\n")
    assert boot_time(stat) is None
    assert boot_time(tmp_path / "absent") is None
