import json
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import TRAINING_DIR, read_json, run_trainer, subprocess_env, trainer_command, without_timing

from two_tower.config import TrainConfig
from two_tower.cv import assign_folds, split_rows
from two_tower.data import load_dataset
from two_tower.interrupt import StopRequest
from two_tower.metrics import ndcg_at_k
from two_tower.model import TwoTower
from two_tower.runtime import setup_runtime
from two_tower.train import Trainer, main

FAST = ["--folds", "2", "--epochs", "3", "--batch-size", "64", "--hidden-dim", "64", "--lr", "0.003"]


def baselines(data_dir, tmp_path):
    """(random nDCG@10, untrained-model nDCG@10) on fold 0 of a 2-fold split, same metric as the trainer."""
    data = load_dataset(data_dir)
    assignment = assign_folds(sorted(set(data.query_ids)), 2, 42)
    trainer = Trainer(
        TrainConfig(folds=2, hidden_dim=64),
        data,
        tmp_path,
        setup_runtime("cpu"),
        StopRequest(),
        assignment,
        {},
        10,
    )
    torch.manual_seed(0)
    untrained, _ = trainer.evaluator.evaluate(TwoTower(data.input_dim, 64), 0)
    _, test = split_rows(trainer.pair_fold, data.weak, 0)
    queries, q_local = np.unique(data.pair_query[test], return_inverse=True)
    scores = np.random.default_rng(0).random(len(test))
    rand = ndcg_at_k(
        q_local,
        trainer.evaluator.doc_order[data.pair_doc[test]],
        scores,
        data.relevance[test],
        q_local,
        data.relevance[test],
        len(queries),
    ).mean()
    return float(rand), untrained


def test_trained_model_beats_random_by_a_wide_margin_and_untrained_does_not(tiny_dataset, tmp_path, capsys):
    assert main(["--data", str(tiny_dataset), "--out", str(tmp_path / "out"), *FAST]) == 0
    results = read_json(tmp_path / "out" / "results.json")
    rand, untrained = baselines(tiny_dataset, tmp_path / "b")
    assert abs(untrained - rand) < 0.1, (untrained, rand)
    assert results["ndcg10"]["mean"] > rand + 0.3, (results["ndcg10"], rand)
    assert [f["fold"] for f in results["folds"]] == [0, 1]
    assert results["ndcg10"]["ddof"] == 1
    assert set(results["data"]) == {
        "pairs.csv",
        "query_embeddings.npy",
        "query_ids.txt",
        "doc_embeddings.npy",
        "doc_ids.txt",
    }
    assert read_json(tmp_path / "out" / "status.json")["state"] == "SUCCEEDED"
    folds = read_json(tmp_path / "out" / "folds.json")
    assert len(folds) == 400 and set(folds.values()) == {0, 1}
    printed = capsys.readouterr().out
    assert "runtime: device cpu" in printed and "nDCG@10" in printed


def test_options_logq_accumulation_corpus_eval_and_parquet_run(make_dataset, tmp_path):
    data = make_dataset(queries=80, docs=150, weak=1, fmt="parquet")
    args = [
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--grad-accumulation",
        "2",
        "--logq",
        "--eval-candidates",
        "corpus",
    ]
    assert main(args) == 0
    results = read_json(tmp_path / "out" / "results.json")
    assert results["config"]["gradAccumulation"] == 2 and results["config"]["evalCandidates"] == "corpus"
    assert 0.0 <= results["ndcg10"]["mean"] <= 1.0
    assert "pairs.parquet" in results["data"]


def test_text_dataset_learns_the_hidden_word_mapping(make_dataset, tmp_path):
    data = make_dataset(queries=400, docs=400, text=True, candidates=10, positives=1, vocab=60, words=6)
    assert (
        main(
            [
                "--data",
                str(data),
                "--out",
                str(tmp_path / "out"),
                "--folds",
                "2",
                "--epochs",
                "3",
                "--batch-size",
                "64",
                "--hidden-dim",
                "32",
                "--lr",
                "0.02",
            ]
        )
        == 0
    )
    # Random order of 10 candidates with one relevant doc scores 0.45 on average; queries and documents share
    # no word, so the towers must learn the hidden word mapping to get past it.
    assert read_json(tmp_path / "out" / "results.json")["ndcg10"]["mean"] > 0.6


def test_rerun_after_success_reports_the_same_results(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    args = [
        "--data",
        str(tiny_dataset),
        "--out",
        str(out),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "64",
    ]
    assert main(args) == 0
    first = read_json(out / "results.json")
    assert main(args) == 0
    assert without_timing(read_json(out / "results.json")) == without_timing(first)


def test_fails_when_out_holds_checkpoints_of_another_config(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--data", str(tiny_dataset), "--out", str(out), "--folds", "2", "--epochs", "1"]) == 0
    assert (
        main(["--data", str(tiny_dataset), "--out", str(out), "--folds", "2", "--epochs", "1", "--seed", "5"])
        == 2
    )
    assert "different config (seed differ)" in capsys.readouterr().err


# Long enough (many small steps, checkpoint every ~0.1 s) that a kill lands mid-fold.
RESUME = [
    "--folds",
    "2",
    "--epochs",
    "8",
    "--batch-size",
    "8",
    "--hidden-dim",
    "32",
    "--checkpoint-minutes",
    "0.002",
    "--progress-seconds",
    "0.2",
]


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = run_trainer("--data", str(tiny_dataset), "--out", str(out), *RESUME)
    assert proc.returncode == 0, proc.stderr
    return read_json(out / "results.json")


def start_and_wait_for_checkpoint(data, out):
    proc = subprocess.Popen(
        trainer_command("--data", str(data), "--out", str(out), *RESUME),
        env=subprocess_env(),
        cwd=TRAINING_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list((out / "checkpoints").glob("ckpt-*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    time.sleep(0.5)
    return proc


def test_resume_after_sigkill_gives_the_same_results(tiny_dataset, tmp_path, uninterrupted):
    out = tmp_path / "out"
    proc = start_and_wait_for_checkpoint(tiny_dataset, out)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not (out / "results.json").exists()
    resumed = run_trainer("--data", str(tiny_dataset), "--out", str(out), *RESUME)
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: from fold" in resumed.stdout
    assert without_timing(read_json(out / "results.json")) == without_timing(uninterrupted)


def test_sigterm_saves_a_checkpoint_exits_75_and_resumes_to_the_same_results(
    tiny_dataset, tmp_path, uninterrupted
):
    out = tmp_path / "out"
    proc = start_and_wait_for_checkpoint(tiny_dataset, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    assert "Traceback" not in err and "rerun with the same --out" in err
    status = read_json(out / "status.json")
    assert status["state"] == "INTERRUPTED" and "SIGTERM" in status["message"]
    assert not (out / "results.json").exists()
    assert 1 <= len(list((out / "checkpoints").glob("ckpt-*.pt"))) <= 2
    resumed = run_trainer("--data", str(tiny_dataset), "--out", str(out), *RESUME)
    assert resumed.returncode == 0, resumed.stderr
    assert without_timing(read_json(out / "results.json")) == without_timing(uninterrupted)


def test_epoch_losses_hold_one_mean_loss_per_epoch_and_those_before_an_interruption_survive_the_resume(
    tiny_dataset, tmp_path, uninterrupted
):
    epochs = int(RESUME[RESUME.index("--epochs") + 1])
    assert all(len(f["epochLosses"]) == epochs for f in uninterrupted["folds"])
    assert all(f["epochLosses"][-1] == f["trainLoss"] for f in uninterrupted["folds"])
    out = tmp_path / "out"
    proc = subprocess.Popen(
        trainer_command("--data", str(tiny_dataset), "--out", str(out), *RESUME),
        env=subprocess_env(),
        cwd=TRAINING_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    logged = []
    for line in proc.stdout:
        if line.startswith("fold 1/2 epoch ") and "mean train loss" in line:
            logged.append(float(line.rsplit(" ", 1)[1]))
            if len(logged) == 2:
                break
    # Stopped mid-fold, two epochs done: their losses are in the checkpoint, not yet in any results.json.
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    resumed = run_trainer("--data", str(tiny_dataset), "--out", str(out), *RESUME)
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: from fold 1 epoch" in resumed.stdout
    results = read_json(out / "results.json")
    assert [round(v, 4) for v in results["folds"][0]["epochLosses"][:2]] == logged
    assert [f["epochLosses"] for f in results["folds"]] == [f["epochLosses"] for f in uninterrupted["folds"]]


def test_a_checkpoint_damaged_in_place_is_skipped_and_the_resume_still_gives_the_same_results(
    tiny_dataset, tmp_path, uninterrupted
):
    out = tmp_path / "out"
    proc = start_and_wait_for_checkpoint(tiny_dataset, out)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 75
    saved = sorted((out / "checkpoints").glob("ckpt-*.pt"))
    assert len(saved) == 2, "the test needs a previous checkpoint to fall back to"
    newest = saved[-1]
    data = bytearray(newest.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])  # same size, other bytes
    newest.write_bytes(bytes(data))

    resumed = run_trainer("--data", str(tiny_dataset), "--out", str(out), *RESUME)

    assert resumed.returncode == 0, resumed.stderr
    assert f"checkpoint: {newest.name} is skipped: its bytes do not match its digest" in resumed.stdout
    results = read_json(out / "results.json")
    assert without_timing(results) == without_timing(uninterrupted), (
        "resumed from the older, intact checkpoint"
    )


def test_two_process_gloo_ddp_matches_single_process_quality(tiny_dataset, tmp_path):
    single = run_trainer("--data", str(tiny_dataset), "--out", str(tmp_path / "single"), *FAST)
    assert single.returncode == 0, single.stderr
    cmd = [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "two_tower.train",
        "--data",
        str(tiny_dataset),
        "--out",
        str(tmp_path / "ddp"),
        *FAST,
    ]
    ddp = subprocess.run(
        [trainer_command()[0], *cmd],
        env=subprocess_env(),
        cwd=TRAINING_DIR,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "DDP over 2 processes (gloo)" in ddp.stdout
    a, b = read_json(tmp_path / "single" / "results.json"), read_json(tmp_path / "ddp" / "results.json")
    assert abs(a["ndcg10"]["mean"] - b["ndcg10"]["mean"]) < 0.02, (a["ndcg10"], b["ndcg10"])
    for fa, fb in zip(a["folds"], b["folds"], strict=True):
        assert fa["trainLoss"] == pytest.approx(fb["trainLoss"], rel=0.02)
    assert json.dumps(a["config"]) == json.dumps(b["config"])


def test_job_file_settings_reach_results_and_flags_override_them(tiny_dataset, tmp_path):
    job = tmp_path / "job.json"
    train = {
        "folds": 3,
        "epochs": 5,
        "batchSize": 32,
        "learningRate": 0.002,
        "weightDecay": 0.01,
        "precision": "auto",
        "gradAccumulation": 1,
        "seed": 7,
        "temperature": 0.1,
        "logQCorrection": False,
        "evalCandidates": "labeled",
        "hiddenDim": 16,
        "checkpointMinutes": 10,
        "finalModel": True,
    }
    job.write_text(json.dumps({"version": 1, "sweep": "s", "config": "o", "examples": 2000, "train": train}))
    assert (
        main(
            [
                "--data",
                str(tiny_dataset),
                "--out",
                str(tmp_path / "out"),
                "--config",
                str(job),
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    config = read_json(tmp_path / "out" / "results.json")["config"]
    assert config == {**train, "epochs": 1, "maxExamples": 2000}


def test_fails_when_the_training_loss_becomes_nan_naming_where_and_leaving_no_results(
    tiny_dataset, tmp_path, monkeypatch, capsys
):
    import two_tower.train as train

    real = train.in_batch_softmax_loss
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 5 else loss  # diverges at the fifth step

    monkeypatch.setattr(train, "in_batch_softmax_loss", diverging)
    out = tmp_path / "out"
    args = [
        "--data",
        str(tiny_dataset),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--folds",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "16",
    ]
    code = train.main([*args, "--progress-seconds", "0"])

    assert code == 2
    err = capsys.readouterr().err
    assert "the training diverged: the training loss is nan by fold 1/2, epoch 1/2, step 5." in err
    assert "Fix: lower learningRate" in err and "Traceback" not in err
    assert not (out / "results.json").exists()
    status = read_json(out / "status.json")
    assert status["state"] == "FAILED" and status["exitCode"] == 2
    assert not list((out / "checkpoints").glob("ckpt-*.pt")), "a diverged model is never checkpointed"


# A spot replacement may land on another instance type of the sweep: a checkpoint written under bf16 (A10G,
# L4, A100, H100) resumed on a V100/T4 (fp16 + GradScaler) and the reverse. No CUDA here, so the runtime is
# forced: the real CPU runtime with fp16 + GradScaler switched on. autocast stays off (fp16 autocast on CPU is
# slow and beside the point): at a resume the precisions differ in whether a scaler state exists.
SWITCH = ["--device", "cpu", "--folds", "2", "--epochs", "2", "--batch-size", "16", "--hidden-dim", "32"]


def forced_runtime(monkeypatch, precision):
    """Make train.main run under ``precision``; "fp16": the CPU runtime with a GradScaler, as on a T4."""
    import dataclasses

    import two_tower.train as train

    def setup(device, configured, compile_mode):
        assert configured == "auto", "the config says auto: the device decides, so any device may resume"
        rt = setup_runtime(device, configured, compile_mode)
        if precision == "fp16":
            rt = dataclasses.replace(rt, precision="fp16", use_grad_scaler=True)
        return rt

    monkeypatch.setattr(train, "setup_runtime", setup)


def interrupted_run(monkeypatch, data, out, precision, after_steps=7):
    """Run under ``precision``, stopped after ``after_steps`` steps: exit 75 and a mid-fold checkpoint."""
    import two_tower.train as train

    stops = []
    monkeypatch.setattr(train, "install_signal_handlers", stops.append)
    real, calls = train.in_batch_softmax_loss, {"n": 0}

    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == after_steps:
            stops[0].set("test stop")
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "in_batch_softmax_loss", counting)
    forced_runtime(monkeypatch, precision)
    assert train.main(["--data", str(data), "--out", str(out), *SWITCH]) == 75
    monkeypatch.setattr(train, "in_batch_softmax_loss", real)
    state = torch.load(sorted((out / "checkpoints").glob("ckpt-*.pt"))[-1], weights_only=False)
    assert (state["fold"], state["epoch"], state["step"]) == (0, 0, after_steps), "a mid-fold checkpoint"
    return state


@pytest.fixture(scope="module")
def uninterrupted_switch(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("switch")
    assert main(["--data", str(tiny_dataset), "--out", str(out), *SWITCH]) == 0
    return read_json(out / "results.json")


@pytest.mark.parametrize(
    ("written", "resumed", "note"),
    [
        ("fp32", "fp16", "no GradScaler state was saved: a fresh GradScaler starts"),
        ("fp16", "fp32", "the saved GradScaler state is not needed here and is ignored"),
        ("fp16", "fp16", None),
        ("fp32", "fp32", None),
    ],
)
def test_a_checkpoint_resumes_under_another_precision_the_device_decides(
    tiny_dataset, tmp_path, monkeypatch, capsys, uninterrupted_switch, written, resumed, note
):
    out = tmp_path / "out"
    state = interrupted_run(monkeypatch, tiny_dataset, out, written)
    assert state["precision"] == written
    assert bool(state["scaler"]) == (written == "fp16"), "only fp16 has (and saves) a GradScaler state"
    capsys.readouterr()

    forced_runtime(monkeypatch, resumed)
    assert main(["--data", str(tiny_dataset), "--out", str(out), *SWITCH]) == 0

    log = capsys.readouterr().out
    assert "resume: from fold 1 epoch 1 step 7 (0 folds done)" in log
    if note is None:
        assert "checkpoint written under" not in log
    else:
        assert f"resume: checkpoint written under {written}, continuing under {resumed}: {note}" in log
    results = read_json(out / "results.json")
    assert results["hardware"]["precision"] == resumed
    # The math is fp32 in all three (autocast off here), and scaling by a power of two is exact: the resumed
    # run computes what an uninterrupted one does. On a GPU fp16 vs bf16 autocast would make them differ.
    assert without_timing(results)["folds"] == without_timing(uninterrupted_switch)["folds"]
