"""The trained model users keep: the final model (train.finalModel), its export (model/), its resume after a
kill, ``python -m two_tower.encode`` and the job runner's upload of model/ before results.json."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TRAINING_DIR, read_json, run_trainer, subprocess_env, trainer_command
from jobkit import local_job, run_job
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file as load_torch

import contract
from spot_runner import job as job_module
from spot_runner.storage import LocalStore
from two_tower.model import TwoTower
from two_tower.train import main as train_main

SMALL = ["--folds", "2", "--epochs", "2", "--batch-size", "16", "--hidden-dim", "16"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """One run with the final model (the default), its OUT and its log."""
    out = tmp_path_factory.mktemp("final") / "out"
    proc = run_trainer("--data", str(tiny_dataset), "--out", str(out), *SMALL)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_the_final_model_is_exported_with_a_model_json_describing_its_weights(trained, tiny_dataset):
    out, log = trained
    manifest = read_json(out / "model" / "model.json")
    weights = out / "model" / "model.safetensors"
    assert manifest["formatVersion"] == 1
    assert manifest["weights"] == {"file": "model.safetensors", "sha256": sha256(weights)}
    assert manifest["model"]["input"] == "embeddings"
    assert (manifest["model"]["inputDim"], manifest["model"]["hiddenDim"]) == (16, 16)
    results = read_json(out / "results.json")
    assert manifest["train"] == results["config"] and manifest["train"]["finalModel"] is True
    assert manifest["data"] == results["data"] and manifest["torch"] == torch.__version__
    assert manifest["createdAt"].endswith("Z")
    assert manifest["encoder"] is None  # vectors that encode_texts did not make (no encoder.json beside them)
    assert results["finalModel"]["sha256"] == sha256(weights)
    assert results["finalModel"]["trainExamples"] > max(f["trainExamples"] for f in results["folds"])
    assert not contract.problems("results", {**results, "job": _job_section()})
    # Both towers' weights, loadable into a fresh model as they are.
    fresh = TwoTower(16, 16)
    fresh.load_state_dict(load_torch(weights), strict=True)
    assert "final model epoch 2/2" in log and "final model: exported to" in log
    assert not list(out.glob(".model-*")), "no temporary export directory is left"


def test_no_final_model_means_no_model_and_fewer_steps(trained, tiny_dataset, tmp_path):
    out = tmp_path / "out"
    proc = run_trainer("--data", str(tiny_dataset), "--out", str(out), *SMALL, "--no-final-model")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "model").exists()
    results = read_json(out / "results.json")
    assert results["finalModel"] is None and results["config"]["finalModel"] is False
    with_final = read_json(trained[0] / "results.json")
    # The folds are the same; only the final pass is missing.
    assert [f["ndcg10"] for f in results["folds"]] == [f["ndcg10"] for f in with_final["folds"]]
    epochs_run = proc.stdout.count("mean train loss")
    assert epochs_run == 2 * 2 and trained[1].count("mean train loss") == 3 * 2


def _job_section() -> dict:
    return {
        "sweep": "s",
        "config": "c",
        "instanceType": "local",
        "market": "local",
        "attempts": 1,
        "interruptions": 0,
    }


# Many small steps in each pass, a checkpoint every ~0.1 s: a kill lands inside the final model's pass.
LONG = [
    "--folds",
    "2",
    "--epochs",
    "6",
    "--batch-size",
    "8",
    "--hidden-dim",
    "32",
    "--checkpoint-minutes",
    "0.002",
    "--progress-seconds",
    "0.1",
]


def _latest_pass(out: Path) -> tuple[int, int, int] | None:
    """(fold, epoch, step) of the newest checkpoint, or None before the first."""
    from two_tower import checkpoint as ckpt

    state = ckpt.load_latest(out / "checkpoints")
    return None if state is None else (state["fold"], state["epoch"], state["step"])


def test_kill_9_during_the_final_model_resumes_there_and_exports_the_same_weights(tiny_dataset, tmp_path):
    whole = tmp_path / "whole"
    done = run_trainer("--data", str(tiny_dataset), "--out", str(whole), *LONG, timeout=300)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "out"
    proc = subprocess.Popen(
        trainer_command("--data", str(tiny_dataset), "--out", str(out), *LONG),
        env=subprocess_env(),
        cwd=TRAINING_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while True:  # until a checkpoint inside the final pass (fold == folds), past its first step
            assert proc.poll() is None, "the run ended before a checkpoint inside the final model"
            assert time.monotonic() < deadline
            at = _latest_pass(out) if (out / "checkpoints").exists() else None
            if at is not None and at[0] == 2 and (at[1], at[2]) > (0, 0):
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists() and not (out / "model").exists()

    resumed = run_trainer("--data", str(tiny_dataset), "--out", str(out), *LONG, timeout=300)

    assert resumed.returncode == 0, resumed.stderr
    assert "resume: from final model" in resumed.stdout
    assert "fold 1/2" not in resumed.stdout and "fold 2/2" not in resumed.stdout, "no fold is trained again"
    a, b = load_torch(whole / "model" / "model.safetensors"), load_torch(out / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (
        read_json(out / "model" / "model.json")["weights"]
        == read_json(whole / "model" / "model.json")["weights"]
    )


def test_a_kill_after_the_final_checkpoint_but_before_the_export_exports_on_the_rerun(
    trained, tiny_dataset, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(trained[0], out)
    shutil.rmtree(out / "model")
    (out / "results.json").unlink()
    (out / ".model-123.tmp").mkdir()  # an export killed before its rename

    assert train_main(["--data", str(tiny_dataset), "--out", str(out), *SMALL]) == 0

    assert sha256(out / "model" / "model.safetensors") == sha256(trained[0] / "model" / "model.safetensors")
    assert not (out / ".model-123.tmp").exists()


# encode --------------------------------------------------------------------------------------------


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w + b  # nn.LayerNorm's default eps


_erf = np.vectorize(math.erf)


def _tower(weights: dict[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    """The residual MLP of two_tower/model.py written out in numpy (float64), from the safetensors weights."""
    p = {k.removeprefix(name + "."): v.astype(np.float64) for k, v in weights.items() if k.startswith(name)}
    h = _layer_norm(x, p["norm.weight"], p["norm.bias"]) @ p["up.weight"].T + p["up.bias"]
    h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))  # exact GELU, as F.gelu
    y = x + h @ p["down.weight"].T + p["down.bias"]
    return y / np.linalg.norm(y, axis=-1, keepdims=True)


def _encode(model: Path, data: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *trainer_command()[:2],
            "two_tower.encode",
            "--model",
            str(model),
            "--data",
            str(data),
            "--out",
            str(out),
            *args,
        ],
        env=subprocess_env(),
        cwd=TRAINING_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_encode_scores_equal_a_numpy_computation_from_the_weights_and_topk_is_their_argsort(
    trained, tiny_dataset, tmp_path
):
    model = trained[0] / "model"
    out = tmp_path / "enc"

    done = _encode(model, tiny_dataset, out, "--top-k", "5", "--batch-size", "37")  # chunks of odd size

    assert done.returncode == 0, done.stderr
    weights = load_numpy(model / "model.safetensors")
    q = _tower(weights, "query_tower", np.load(tiny_dataset / "query_embeddings.npy").astype(np.float64))
    d = _tower(weights, "doc_tower", np.load(tiny_dataset / "doc_embeddings.npy").astype(np.float64))
    np.testing.assert_allclose(np.load(out / "query_vectors.npy"), q, atol=1e-5)
    np.testing.assert_allclose(np.load(out / "doc_vectors.npy"), d, atol=1e-5)
    query_ids = (tiny_dataset / "query_ids.txt").read_text().split()
    doc_ids = (tiny_dataset / "doc_ids.txt").read_text().split()
    assert (out / "query_ids.txt").read_text().split() == query_ids
    assert (out / "doc_ids.txt").read_text().split() == doc_ids

    scores = q @ d.T
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    with open(out / "topk.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(query_ids) * 5
    got = np.array([doc_ids.index(r["doc_id"]) for r in rows]).reshape(len(query_ids), 5)
    got_scores = np.array([float(r["score"]) for r in rows]).reshape(len(query_ids), 5)
    assert [r["rank"] for r in rows[:5]] == ["1", "2", "3", "4", "5"]
    assert [r["query_id"] for r in rows[::5]] == query_ids
    np.testing.assert_allclose(got_scores, np.take_along_axis(scores, got, 1), atol=1e-5)
    # The same documents as argsort, except where two scores are equal to within float32 rounding.
    differ = got != expected
    assert np.all(
        np.abs(np.take_along_axis(scores, got, 1) - np.take_along_axis(scores, expected, 1))[differ] < 1e-6
    )


def test_encode_reads_a_text_dataset_as_the_trainer_featurizes_it(make_dataset, tmp_path):
    data = make_dataset("texts", text=True)
    out = tmp_path / "out"
    assert train_main(["--data", str(data), "--out", str(out), *SMALL]) == 0
    done = _encode(out / "model", data, tmp_path / "enc", "--top-k", "3")
    assert done.returncode == 0, done.stderr
    vectors = np.load(tmp_path / "enc" / "doc_vectors.npy")
    assert vectors.shape[0] == len((data / "docs.csv").read_text().splitlines()) - 1
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_fails_when_the_safetensors_file_is_corrupted_naming_it(trained, tiny_dataset, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained[0] / "model", model)
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
    (model / "model.safetensors").write_bytes(bytes(data))

    done = _encode(model, tiny_dataset, tmp_path / "enc")

    assert done.returncode == 2
    assert str(model / "model.safetensors") in done.stderr and "do not match model.json" in done.stderr
    assert "Fix:" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "enc").exists()


def test_fails_when_the_safetensors_file_is_missing_naming_it(trained, tiny_dataset, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained[0] / "model", model)
    (model / "model.safetensors").unlink()

    done = _encode(model, tiny_dataset, tmp_path / "enc")

    assert done.returncode == 2
    assert f"{model / 'model.safetensors'}: model.safetensors is missing." in done.stderr
    assert "Traceback" not in done.stderr


def test_fails_when_the_data_does_not_fit_the_model(trained, make_dataset, tmp_path):
    data = make_dataset("narrow", dim=8)
    done = _encode(trained[0] / "model", data, tmp_path / "enc")
    assert done.returncode == 2
    assert "embeddings of width 8, but the model was trained on embeddings of width 16" in done.stderr


# job runner ----------------------------------------------------------------------------------------


class RecordingStore(LocalStore):
    """A file store that records the order of the keys written."""

    written: list[str] = []

    def put_bytes(self, key, data, **kwargs):
        RecordingStore.written.append(key)
        return super().put_bytes(key, data, **kwargs)

    def upload(self, src, key, tags=None):
        RecordingStore.written.append(key)
        return super().upload(src, key, tags)


def test_the_job_runner_uploads_model_before_results_json_and_names_it(make_dataset, tmp_path, monkeypatch):
    job, store = local_job(tmp_path, make_dataset(), epochs=1, batchSize=16, hiddenDim=16)
    RecordingStore.written = []
    monkeypatch.setattr(job_module, "open_store", lambda uri, endpoint=None: RecordingStore(store))
    monkeypatch.setattr(job_module.Runner, "install_signal_handlers", lambda self: None)

    assert job_module.main(["--job", job, "--workdir", str(tmp_path / "work")]) == 0

    written = RecordingStore.written
    assert (
        written.index("model/model.safetensors")
        < written.index("model/model.json")
        < written.index("results.json")
    )
    assert "results.json" not in written[: written.index("model/model.json")]
    results = json.loads((store / "results.json").read_text())
    assert results["model"] == {
        "key": "sweeps/test-sweep/tiny/model/",
        "sha256": sha256(store / "model" / "model.safetensors"),
    }
    assert not contract.problems("results", results)
    manifest = json.loads((store / "model" / "model.json").read_text())
    assert manifest["weights"]["sha256"] == results["model"]["sha256"]


def test_the_job_runner_records_no_model_when_final_model_is_off(make_dataset, tmp_path):
    job, store = local_job(tmp_path, make_dataset(), epochs=1, batchSize=16, hiddenDim=16, finalModel=False)

    done = run_job(job, tmp_path / "work")

    assert done.returncode == 0, done.stderr
    results = json.loads((store / "results.json").read_text())
    assert results["model"] is None and not (store / "model").exists()
    assert not contract.problems("results", results)


def test_progress_and_eta_count_the_final_model_pass(tiny_dataset, tmp_path):
    proc = run_trainer(
        "--data", str(tiny_dataset), "--out", str(tmp_path / "out"), *SMALL, "--progress-seconds", "0"
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("progress ")]
    percent = [float(line.split()[1].rstrip("%")) for line in lines]
    in_final = [p for line, p in zip(lines, percent, strict=True) if " final model epoch " in line]
    in_folds = [p for line, p in zip(lines, percent, strict=True) if " fold " in line]
    assert in_final and in_folds
    # The folds end well short of 100%: the final pass over all rows is about a third of a 2-fold run's steps.
    assert max(in_folds) < 75.0 < max(in_final) <= 100.0
    assert percent == sorted(percent)
