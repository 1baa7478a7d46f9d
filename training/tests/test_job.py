"""The job runner's failure paths, idempotency and its data and checkpoint transfer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from jobkit import job_doc, run_job, s3, states  # noqa: F401 - fixture

from spot_runner.fetch import fetch_data
from spot_runner.storage import open_store
from spot_runner.sync import CheckpointSync


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
    assert "Fix: regenerate the file" in done.stderr
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
