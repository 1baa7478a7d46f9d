"""The job runner's failure paths, idempotency and its data and checkpoint transfer."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import torch
from conftest import edit_pairs, make_relevance_negative
from jobkit import (  # noqa: F401 - fixture
    job_doc,
    local_job,
    run_job,
    s3,
    start_job,
    start_job_until,
    states,
    wait_for,
)

from spot_runner.fetch import fetch_data
from spot_runner.storage import open_store
from spot_runner.sync import CheckpointSync
from two_tower.train import main as train_main


def write_job(store: Path, doc: dict | str) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    job = store / "job.json"
    job.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return job


def status_of(store: Path) -> dict:
    return json.loads((store / "status.json").read_text())


def test_fails_when_the_job_file_is_not_json(tmp_path):
    store = tmp_path / "store"
    job = write_job(store, '{"version": 1,\n "sweep": "s",\n}')

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2
    assert "is not valid JSON" in done.stderr and "line 3, column 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert status_of(store)["state"] == "FAILED" and "not valid JSON" in status_of(store)["message"]


def test_fails_when_fields_are_missing_or_wrong_naming_each_field(tmp_path):
    store = tmp_path / "store"
    doc = job_doc(store.as_uri() + "/", str(tmp_path / "data"), version=2, gpus="two")
    del doc["train"]
    job = write_job(store, doc)

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2 and "Traceback" not in done.stderr
    for field in (
        "`version` must be 1",
        '`gpus` must be an integer from 1 to 64 (got "two")',
        "`train` must be an object",
    ):
        assert field in done.stderr
    assert "Fix: correct these fields in the sweep spec and regenerate the file" in done.stderr
    assert status_of(store)["state"] == "FAILED" and "`gpus`" in status_of(store)["message"]


def test_fails_when_the_job_file_does_not_exist(tmp_path):
    done = run_job(str(tmp_path / "nowhere" / "job.json"), tmp_path / "work")

    assert done.returncode == 2 and "cannot be read" in done.stderr and "Traceback" not in done.stderr


def test_fails_when_the_data_is_unreachable_and_counts_the_attempt(tmp_path, s3):  # noqa: F811
    store = tmp_path / "store"
    store.mkdir()
    (store / "status.json").write_text(json.dumps({"state": "PENDING", "attempts": 3, "interruptions": 2}))
    job = write_job(store, job_doc(store.as_uri() + "/", "s3://no-such-bucket-for-data/datasets/o/"))

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2 and "Traceback" not in done.stderr
    status = status_of(store)
    assert status["state"] == "FAILED" and status["attempts"] == 4 and status["interruptions"] == 2
    assert "`data`" in status["message"] and "no-such-bucket-for-data" in status["message"]
    assert states(status) == ["BOOTSTRAPPING", "FAILED"]
    assert not (store / "results.json").exists()


def test_fails_when_the_local_data_directory_is_missing(tmp_path):
    store = tmp_path / "store"
    job = write_job(store, job_doc(store.as_uri() + "/", str(tmp_path / "no-data")))

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2
    assert "no-data (job field `data`) does not exist or is empty" in status_of(store)["message"]


def test_keeps_the_job_file_it_ran_in_the_store_when_it_comes_from_elsewhere(tmp_path):
    # On AWS the job arrives as a deploy asset (another bucket); the store keeps the copy that ran.
    store = tmp_path / "store"
    shipped = tmp_path / "assets" / "0a1b2c.json"
    shipped.parent.mkdir()
    shipped.write_text(json.dumps(job_doc(store.as_uri() + "/", str(tmp_path / "no-data"))))

    assert run_job(str(shipped), tmp_path / "work").returncode == 2
    assert (store / "job.json").read_bytes() == shipped.read_bytes()


def test_reads_its_job_from_the_ssm_parameter_the_sweep_stack_writes(tmp_path, s3):  # noqa: F811
    import boto3

    store = tmp_path / "store"
    doc = job_doc(store.as_uri() + "/", str(tmp_path / "no-data"))
    ssm = boto3.client("ssm", endpoint_url=s3.endpoint, region_name="us-east-1")
    ssm.put_parameter(Name="/spot-sweep/t/c/job", Value=json.dumps(doc), Type="String")

    done = run_job("ssm:/spot-sweep/t/c/job", tmp_path / "work")

    assert done.returncode == 2, done.stderr  # it got as far as the (missing) data
    assert json.loads((store / "job.json").read_text()) == doc
    assert status_of(store)["state"] == "FAILED"


def test_fails_when_the_job_parameter_does_not_exist(tmp_path, s3):  # noqa: F811
    done = run_job("ssm:/spot-sweep/t/none/job", tmp_path / "work")

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "SSM parameter /spot-sweep/t/none/job does not exist" in done.stderr


def test_a_failure_never_deletes_an_earlier_result(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "results.json").write_text('{"ndcg10": {"mean": 0.5}}')
    (store / "status.json").write_text(json.dumps({"state": "FAILED", "attempts": 1}))
    job = write_job(store, job_doc(store.as_uri() + "/", str(tmp_path / "no-data")))

    assert run_job(str(job), tmp_path / "work").returncode == 2
    assert (store / "results.json").read_text() == '{"ndcg10": {"mean": 0.5}}'


def test_does_not_retrain_a_job_that_already_succeeded(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    before = json.dumps({"state": "SUCCEEDED", "attempts": 2, "interruptions": 1})
    (store / "status.json").write_text(before)
    (store / "results.json").write_text("{}")
    job = write_job(store, job_doc(store.as_uri() + "/", str(tmp_path / "data-that-does-not-exist")))

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0 and "nothing to do" in done.stderr
    assert (store / "status.json").read_text() == before


def test_fail_option_records_a_bootstrap_failure_in_the_store(s3, tmp_path):  # noqa: F811
    s3.put("sweeps/s/c/job.json", json.dumps(job_doc(s3.uri("sweeps/s/c/"), s3.uri("data/"))))

    done = run_job(
        s3.uri("sweeps/s/c/job.json"), tmp_path / "work", "--fail", "CUDA sees 1 GPU, the job asks for 4"
    )

    assert done.returncode == 1
    status = s3.get_json("sweeps/s/c/status.json")
    assert status["state"] == "FAILED" and status["message"] == "CUDA sees 1 GPU, the job asks for 4"


def test_fetches_s3_data_once_and_again_only_what_changed(s3, tmp_path):  # noqa: F811
    s3.put("datasets/o/pairs.csv", "query_id,doc_id,relevance\nq1,d1,1\n")
    s3.put("datasets/o/query_ids.txt", "q1\n")
    dest = tmp_path / "data"

    fetch_data(s3.uri("datasets/o/"), dest, None)
    first = {p.name: p.stat().st_mtime_ns for p in dest.iterdir() if not p.name.startswith(".")}
    time.sleep(0.01)
    fetch_data(s3.uri("datasets/o/"), dest, None)
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir() if not p.name.startswith(".")} == first

    s3.put("datasets/o/query_ids.txt", "q1\nq2\n")
    (dest / "pairs.csv").write_text("corrupted locally\n")
    fetch_data(s3.uri("datasets/o/"), dest, None)
    assert (dest / "query_ids.txt").read_text() == "q1\nq2\n"
    assert (dest / "pairs.csv").read_text() == "query_id,doc_id,relevance\nq1,d1,1\n"


def test_mirrors_checkpoints_keeping_what_the_trainer_keeps(s3, tmp_path):  # noqa: F811
    store = open_store(s3.uri("sweeps/s/c/"))
    local = tmp_path / "out" / "checkpoints"
    local.mkdir(parents=True)
    (local / "ckpt-00000001.pt").write_bytes(b"1")
    (local / "ckpt-00000002.pt").write_bytes(b"22")
    (local / "ckpt-00000003.pt.tmp").write_bytes(b"partial")
    sync = CheckpointSync(store, local)

    sync.sync()
    assert s3.keys("sweeps/s/c/checkpoints/") == [
        "sweeps/s/c/checkpoints/ckpt-00000001.pt",
        "sweeps/s/c/checkpoints/ckpt-00000002.pt",
    ]
    (local / "ckpt-00000003.pt.tmp").rename(local / "ckpt-00000003.pt")
    (local / "ckpt-00000001.pt").unlink()
    sync.sync()
    assert s3.keys("sweeps/s/c/checkpoints/") == [
        "sweeps/s/c/checkpoints/ckpt-00000002.pt",
        "sweeps/s/c/checkpoints/ckpt-00000003.pt",
    ]

    fresh = CheckpointSync(store, tmp_path / "new-instance" / "checkpoints")
    assert fresh.fetch() == ["ckpt-00000002.pt", "ckpt-00000003.pt"]
    assert (tmp_path / "new-instance" / "checkpoints" / "ckpt-00000003.pt").read_bytes() == b"partial"


def test_fails_when_a_job_file_holds_a_key_twice_instead_of_keeping_the_last(tmp_path):
    from spot_runner.jobfile import parse_job
    from spot_runner.runlog import JobError

    text = json.dumps(job_doc("file:///tmp/store/", "/tmp/data")).replace('"gpus": 1', '"gpus": 1, "gpus": 8')
    with pytest.raises(JobError, match=r"has the key 'gpus' twice in one object"):
        parse_job(text.encode(), "job.json")


# Every printed fix works when followed to the letter (issue 9 item 8) -------------------------------------


class Trial:
    """One config in a local store whose failure a test provokes, then fixes as the message says."""

    def __init__(self, root: Path, make_dataset):
        self.root = root
        self.store = root / "store"
        self.work = root / "work"
        self.job = str(self.store / "job.json")
        self.data = root / "data"
        self.make_dataset = make_dataset
        self.first: subprocess.Popen | None = None

    def doc(self, **overrides) -> dict:
        doc = job_doc(self.store.as_uri() + "/", str(self.data), **overrides)
        doc["train"].update(epochs=1)
        return doc

    def write(self, doc: dict | str) -> None:
        write_job(self.store, doc)

    def dataset(self, **params) -> None:
        self.make_dataset(str(self.data.relative_to(self.root.parent)), **params)

    def run(self, job: str | None = None) -> subprocess.CompletedProcess:
        return run_job(job or self.job, self.work)

    def start_long(self) -> None:
        """A runner that trains for several seconds, reported TRAINING with progress in the store."""
        self.dataset()
        doc = self.doc()
        doc["train"].update(epochs=60, batchSize=16)
        self.write(doc)
        self.first = start_job(self.job, self.work, "--sync-seconds", "0.2")
        wait_for(
            lambda: (self.store / "status.json").exists() and status_of(self.store).get("progress"),
            "the first runner training",
            timeout=90,
            proc=self.first,
        )

    def status(self) -> dict:
        return status_of(self.store)

    def script(self, **spec) -> dict:
        code = self.root / "code"
        code.mkdir(exist_ok=True)
        (code / "train.py").write_text(
            "import json, os\nos.makedirs('results', exist_ok=True)\n"
            "json.dump({'ndcg10': 0.5}, open('results/run.json', 'w'))\n"
        )
        script = {
            "code": str(code),
            "entrypoint": "train.py",
            "args": [],
            "patches": [],
            "results": "results/*",
        }
        script.update(spec)
        return job_doc(self.store.as_uri() + "/", None, script=script)


def _job_missing(t: Trial):
    t.dataset()
    t.write(t.doc())
    return t.run(str(t.store / "jbo.json"))  # a typo in --job


def _job_not_json(t: Trial):
    t.dataset()
    t.write(json.dumps(t.doc())[:-1])
    return t.run()


def _job_bad_field(t: Trial):
    t.dataset()
    t.write(t.doc(gpus="two"))
    return t.run()


def _regenerated(t: Trial):
    t.write(t.doc())  # what regenerating from a correct spec gives
    return t.run()


def _data_missing(t: Trial):
    t.write(t.doc())
    return t.run()


def _data_created(t: Trial):
    t.dataset()
    return t.run()


def _busy(t: Trial):
    t.start_long()
    return t.run()


def _waited_then_again(t: Trial):
    out, _ = t.first.communicate(timeout=180)
    assert t.first.returncode == 0, out
    return t.run()


def _ended_then_again(t: Trial):
    pid = int(re.search(r"`kill (\d+)`", t.provoked).group(1))
    assert pid == t.first.pid
    os.kill(pid, signal.SIGTERM)
    out, _ = t.first.communicate(timeout=120)
    assert t.first.returncode == 75, out
    done = t.run()
    assert "resume: from fold" in done.stderr
    return done


def _stopped(t: Trial):
    t.start_long()
    control = {
        "version": 1,
        "action": "stop",
        "by": "spot-sweep stop",
        "reason": "stopped with spot-sweep stop",
    }
    control.update(at="2026-12-01T12:00:00Z", id=str(uuid.uuid4()))
    (t.store / "control.json").write_text(json.dumps(control))
    out, _ = t.first.communicate(timeout=120)
    return subprocess.CompletedProcess(t.first.args, t.first.returncode, "", out)


def _started_again(t: Trial):
    # What `spot-sweep start` writes (lib/store/control.ts requestControl).
    control = {"version": 1, "action": "start", "by": "spot-sweep start", "reason": "started again"}
    control.update(at="2026-12-01T12:05:00Z", id=str(uuid.uuid4()))
    (t.store / "control.json").write_text(json.dumps(control))
    done = t.run()
    assert "resume: from fold" in done.stderr
    return done


def _entrypoint_outside(t: Trial):
    t.write(t.script(entrypoint="../train.py"))
    return t.run()


def _entrypoint_inside(t: Trial):
    t.write(t.script(entrypoint="train.py"))
    return t.run()


def _results_glob_matches_nothing(t: Trial):
    t.write(t.script(results="out/*.csv"))
    return t.run()


def _results_glob_matches(t: Trial):
    t.write(t.script(results="results/*.json"))
    return t.run()


def _negative_relevance(t: Trial):
    t.dataset()
    make_relevance_negative(t.data, line=2)
    t.write(t.doc())
    return t.run()


def _relevance_zero(t: Trial):
    edit_pairs(t.data, lambda lines: lines.__setitem__(1, ",".join([*lines[1].split(",")[:2], "0", "0"])))
    return t.run()


def _too_many_folds(t: Trial):
    t.dataset(queries=12, docs=24)
    doc = t.doc()
    doc["train"]["folds"] = 13
    t.write(doc)
    return t.run()


def _folds_as_said(t: Trial):
    doc = t.doc()
    doc["train"]["folds"] = int(re.search(r"use at most (\d+) folds", t.provoked).group(1))
    t.write(doc)
    return t.run()


PRINTED_FIXES = {
    # case: (provoke, exit code, the printed fix, follow it to the letter)
    "job.json not found": (
        _job_missing,
        2,
        "Fix: pass --job with the job.json the sweep wrote.",
        _data_created,
    ),
    "job.json not JSON": (_job_not_json, 2, "Fix: regenerate the file from the sweep spec", _regenerated),
    "job.json field wrong": (_job_bad_field, 2, "Fix: correct these fields in the sweep spec", _regenerated),
    "data directory missing": (_data_missing, 2, "Fix: create the dataset there", _data_created),
    "another runner, wait": (_busy, 73, "Fix: wait for it to end", _waited_then_again),
    "another runner, end it": (_busy, 73, "or end it with `kill ", _ended_then_again),
    "stopped, then start": (_stopped, 76, "`spot-sweep start` resumes from it", _started_again),
    "entrypoint outside the code": (_entrypoint_outside, 2, "Fix: correct these fields", _entrypoint_inside),
    "results glob matches nothing": (
        _results_glob_matches_nothing,
        1,
        "Fix: make the glob match the files the script writes",
        _results_glob_matches,
    ),
    "trainer: negative relevance": (_negative_relevance, 2, "Fix: use integers >= 0", _relevance_zero),
    "trainer: more folds than queries": (_too_many_folds, 2, "Fix: use at most 12 folds", _folds_as_said),
}


@pytest.mark.parametrize("case", PRINTED_FIXES)
def test_the_printed_fix_works_when_followed(tmp_path, make_dataset, case):
    provoke, code, fix, follow = PRINTED_FIXES[case]
    t = Trial(tmp_path / "trial", make_dataset)
    t.root.mkdir()

    failed = provoke(t)
    message = failed.stderr + (json.dumps(t.status()) if (t.store / "status.json").exists() else "")
    t.provoked = message
    assert failed.returncode == code, failed.stderr[-3000:]
    assert fix in message and "Traceback" not in failed.stderr, message[-3000:]

    done = follow(t)

    assert done.returncode == 0, done.stderr[-3000:]
    assert t.status()["state"] == "SUCCEEDED"
    assert (t.store / "results.json").exists()


@pytest.mark.parametrize("fix", ["a new --out directory", "delete the old checkpoints"])
def test_the_trainers_printed_fix_for_data_changed_since_the_checkpoints_works(
    make_dataset, tmp_path, capsys, fix
):
    data = make_dataset()
    out = tmp_path / "out"
    args = ["--data", str(data), "--folds", "2", "--epochs", "1", "--batch-size", "32"]
    assert train_main([*args, "--out", str(out)]) == 0
    edit_pairs(data, lambda lines: lines.pop())
    capsys.readouterr()

    assert train_main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pairs.csv" in err and "Fix: use a new --out directory, or delete the old checkpoints" in err

    if fix == "a new --out directory":
        out = tmp_path / "new-out"
    else:
        shutil.rmtree(out / "checkpoints")
    assert train_main([*args, "--out", str(out)]) == 0


def test_a_job_whose_data_changed_since_its_checkpoints_starts_over_on_the_new_data(tmp_path, make_dataset):
    # The user re-uploads the data of a config whose job.json is unchanged, while it is interrupted: its
    # checkpoints are of the old data, so it starts over, as an uninterrupted run on the new data would.
    data = make_dataset(queries=200, docs=400)
    train = {"epochs": 30, "batchSize": 16, "checkpointMinutes": 0.005}
    job, store = local_job(tmp_path / "changed", data, **train)
    first = start_job_until(
        job,
        tmp_path / "work",
        "checkpoint: ckpt-00000001.pt",
        "the first checkpoint",
        "--sync-seconds",
        "0.2",
    )
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=90)
    assert first.returncode == 75, out
    assert list((store / "checkpoints").glob("ckpt-*.pt")), "the interrupted attempt left checkpoints"
    edit_pairs(data, lambda lines: lines.pop())

    done = run_job(job, tmp_path / "replacement-work", "--sync-seconds", "0.5")

    assert done.returncode == 0, done.stderr[-3000:]
    notes = [line for line in done.stderr.splitlines() if "changed since the checkpoints" in line]
    assert len(notes) == 1 and "pairs.csv" in notes[0], done.stderr[-3000:]
    assert "resume: from" not in done.stderr
    fresh_job, fresh_store = local_job(tmp_path / "fresh", data, **train)
    assert run_job(fresh_job, tmp_path / "fresh-work").returncode == 0
    results, expected = (json.loads((s / "results.json").read_text()) for s in (store, fresh_store))
    assert [f["ndcg10"] for f in results["folds"]] == [f["ndcg10"] for f in expected["folds"]]
    assert results["ndcg10"] == expected["ndcg10"] and results["data"] == expected["data"]
    # What a later replacement would fetch holds only checkpoints of the new data.
    for path in sorted((store / "checkpoints").glob("ckpt-*.pt")):
        assert torch.load(path, map_location="cpu", weights_only=False)["data"] == expected["data"], path.name


# A work directory that cannot be written (issue 9 item 4) -------------------------------------------------


def store_files(store: Path) -> dict[str, bytes]:
    """Everything in the store but status.json (which the runner writes), by key."""
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "status.json"
    }


def fill(directory: Path) -> None:
    """Write into ``directory`` until its file system has no space left."""
    with (directory / "filler").open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.parametrize(
    "disk, cause",
    [
        ("read-only", "read-only"),
        ("full", "no space left"),
        ("too small for the checkpoint", "no space left"),
    ],
)
def test_fails_in_one_sentence_when_the_work_directory_is_read_only_or_full_and_the_store_loses_nothing(
    tmp_path, tmpfs, make_dataset, disk, cause
):
    store = tmp_path / "store"
    job = write_job(store, job_doc(store.as_uri() + "/", str(make_dataset())))
    (store / "status.json").write_text(json.dumps({"state": "PENDING", "attempts": 1, "interruptions": 1}))
    (store / "checkpoints").mkdir()
    (store / "checkpoints" / "ckpt-00000001.pt").write_bytes(os.urandom(2 << 20))
    (store / "checkpoints" / "ckpt-00000001.pt.sha256").write_text("0" * 64 + "\n")
    (store / "history" / "0123456789abcdef").mkdir(parents=True)
    (store / "history" / "0123456789abcdef" / "results.json").write_text('{"ndcg10": {"mean": 0.5}}')
    (store / "train.log").write_text("=== attempt 1 on local (local) at 2026-12-01T12:00:00Z ===\n")
    before = store_files(store)
    disk_dir = tmpfs("disk", "1m", readonly=disk == "read-only")
    if disk == "full":
        fill(disk_dir)
    work = disk_dir / "work"

    done = run_job(str(job), work)

    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("spot-sweep job: ")]
    assert len(said) == 1, done.stderr
    message = said[0].removeprefix("spot-sweep job: ")
    assert str(disk_dir) in message and cause in message.lower() and "Fix:" in message, message
    status = status_of(store)
    assert status["state"] == "FAILED" and status["message"] == message and status["attempts"] >= 1
    after = store_files(store)
    log = before.pop("train.log")
    assert after["train.log"].startswith(log), "the earlier attempts' log is kept"
    assert {key: after.get(key) for key in before} == before, "nothing already in the store is lost"


def test_gpu_metrics_start_only_when_the_child_starts_after_every_download(tmp_path, make_dataset):
    # The idle-GPU alarm must not see the downloads (GPU at 0 %) as idle: the agent stand-in records the
    # runner's log at the moment it is asked to publish; by then the data is local and the child not started.
    job, _store = local_job(tmp_path, make_dataset(), epochs=1)
    seen = tmp_path / "agent-saw.txt"
    agent = tmp_path / "cw-agent"
    agent.write_text(f'#!/bin/sh\necho "$*" > {seen}\ncat {tmp_path / "work" / "train.log"} >> {seen}\n')
    agent.chmod(0o755)
    config = tmp_path / "gpu.json"
    config.write_text(
        '{"metrics": {"metrics_collected": {"nvidia_gpu": {"measurement": ["utilization_gpu"]}}}}'
    )
    done = run_job(
        job,
        tmp_path / "work",
        env={"SPOT_SWEEP_CW_AGENT": str(agent), "SPOT_SWEEP_GPU_METRICS_CONFIG": str(config)},
    )

    assert done.returncode == 0, done.stderr
    args, *log_then = seen.read_text().splitlines()
    assert args == f"-a append-config -m ec2 -s -c file:{config}"
    assert any("=== attempt 1" in line for line in log_then)  # the attempt was set up ...
    assert not any(
        "fold 1" in line.lower() or "epoch" in line.lower() for line in log_then
    )  # ... not trained
    assert "GPU metrics: publishing from now on" in done.stderr
    assert done.stderr.index("GPU metrics: publishing") < done.stderr.index("running: ")
