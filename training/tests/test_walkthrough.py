"""The README's "Your own workflow, end to end", as a user runs it (issue 12's "done when"): a flat CSV of
texts with float weak scores is imported, a tiny local sentence-transformers model is built, and
sweeps/your-workflow.json runs under ``spot-sweep local``: the built-in trainer on the imported, encoded data
beside the user's own MPS-only script (patched, with its own requirements and a declared nDCG@10). Each
config is killed with kill -9 mid-run and resumes; both rank in one leaderboard; the model the sweep kept
encodes new data with ``two_tower.encode``.

The test runs the checked-in spec with only its paths pointed at the test's directory (and more epochs, so
that a kill lands mid-training): what it proves is what the README shows.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TRAINING_DIR, subprocess_env

REPO = TRAINING_DIR.parent
SPEC = REPO / "sweeps" / "your-workflow.json"
CLI = [os.environ.get("NODE", "node"), str(REPO / "bin" / "spot-sweep.js")]
FAST = {
    "SPOT_SWEEP_SYNC_SECONDS": "0.3",  # checkpoints reach the store within a second, so a kill can follow one
    "SPOT_SWEEP_LEASE_TTL_SECONDS": "2",  # a killed runner's lease is taken over 2 s later, not 90
    "OWN_SCRIPT_SECONDS_PER_FOLD": "1.5",  # the user's script is slow enough to be killed between folds
}

pytestmark = pytest.mark.timeout(900)


def run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = subprocess_env(**FAST, **kw.pop("env", {}))
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done


def python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def kill_local_when(cwd: Path, spec: Path, store: Path, config: str, ready) -> None:
    """Starts ``spot-sweep local``, waits until ``ready()``, then kill -9s it, its job runner and the
    runner's child (trainer or script, in its own process group): as a laptop that loses power would."""
    env = subprocess_env(**FAST)
    cmd = [*CLI, "local", str(spec), "--store", str(store)]
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 400
    while not ready():
        assert proc.poll() is None, f"local ended before the kill:\n{proc.stdout.read().decode()[-3000:]}"
        assert time.monotonic() < deadline, f"{config}: the moment to kill never came"
        time.sleep(0.1)
    child_pid = cwd / ".spot-sweep" / "work" / "your-workflow" / config / "child.pid"
    child = int(child_pid.read_text()) if child_pid.is_file() else None
    os.killpg(proc.pid, signal.SIGKILL)
    if child is not None:
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=30)


def status(store: Path, config: str) -> dict:
    path = store / "sweeps" / "your-workflow" / config / "status.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_your_workflow_end_to_end_with_a_kill_9_in_each_config(tmp_path):
    # 1. The user's CSV: query and document texts inline, a graded label, a float weak score on weak rows.
    table = tmp_path / "your-table.csv"
    run(
        python(
            "two_tower.synth",
            "--out",
            str(tmp_path / "syn"),
            "--queries",
            "400",
            "--docs",
            "800",
            "--weak",
            "2",
            "--table",
            str(table),
        ),
        TRAINING_DIR,
    )
    # 2. Import it (README: spot-sweep data import ... --weak-score weak_score).
    data = tmp_path / "your-data"
    run(
        [
            *CLI,
            "data",
            "import",
            str(table),
            "--out",
            str(data),
            "--query",
            "query",
            "--doc",
            "document",
            "--label",
            "label",
            "--weak-score",
            "weak_score",
        ],
        tmp_path,
    )
    weights = [float(r["weight"]) for r in csv.DictReader((data / "pairs.csv").open()) if r["weak"] == "1"]
    assert len(weights) == 800 and len(set(weights)) > 10 and all(0.3 <= w < 1 for w in weights)
    # 3. A tiny sentence-transformers model, built here (no hub).
    encoder = tmp_path / "your-encoder"
    run(
        python(
            "two_tower.tiny_encoder",
            "--out",
            str(encoder),
            "--texts",
            str(data / "queries.csv"),
            str(data / "docs.csv"),
        ),
        TRAINING_DIR,
    )
    assert (encoder / "modules.json").is_file()

    # 4. The checked-in spec, its paths pointed here; more epochs so the kill lands mid-training.
    doc = json.loads(SPEC.read_text())
    imported, mine = doc["configs"]
    assert imported["name"] == "imported" and mine["name"] == "mine" and mine["script"]["requirements"]
    imported["data"], imported["encoder"] = str(data), str(encoder)
    imported["train"]["epochs"] = 150
    imported["train"]["checkpointMinutes"] = 0.005
    mine["script"]["codeDir"] = str(REPO / "sweeps" / "own-script")
    spec = tmp_path / "your-workflow.json"
    spec.write_text(json.dumps(doc))
    store = tmp_path / "store"
    sweep = store / "sweeps" / "your-workflow"

    # 5. kill -9 while `imported` trains, after a checkpoint reached the store.
    ckpts = sweep / "imported" / "checkpoints"
    kill_local_when(
        tmp_path,
        spec,
        store,
        "imported",
        lambda: (status(store, "imported").get("fold") or 0) >= 1 and any(ckpts.glob("ckpt-*.pt")),
    )
    assert "results.json" not in {p.name for p in (sweep / "imported").iterdir()}
    # 6. Again: `imported` resumes and finishes; kill -9 while `mine` runs, after its first fold's checkpoint.
    folds = sweep / "mine" / "checkpoints" / "script" / "folds.json"

    def mine_saved_a_fold() -> bool:
        try:
            return len(json.loads(folds.read_text())) >= 1
        except (FileNotFoundError, json.JSONDecodeError):
            return False

    kill_local_when(tmp_path, spec, store, "mine", mine_saved_a_fold)
    kept = len(json.loads(folds.read_text()))
    assert kept < 5 and not (sweep / "mine" / "results.json").exists()
    # 7. Once more: `mine` resumes from its own checkpoint; the sweep ends with one leaderboard.
    done = run([*CLI, "local", str(spec), "--store", str(store)], tmp_path)

    log = (sweep / "imported" / "train.log").read_text()
    resumed = log.split("=== attempt 2")[-1]
    assert "resume: from fold" in resumed and "starting over" not in resumed, log[-3000:]
    # The texts were encoded once, by the first attempt; the resumed attempt read them from the store's cache.
    assert (
        log.count("embeddings: encoding") == 1 and "embeddings: cache hit" in log.split("=== attempt 2")[-1]
    )
    mine_log = (sweep / "mine" / "train.log").read_text()
    assert f"resuming at fold {kept} of 5" in mine_log, mine_log[-3000:]
    board = json.loads((sweep / "leaderboard.json").read_text())
    ranked = {r["config"]: r for r in board["rows"]}
    assert sorted(r.get("rank") for r in ranked.values()) == [1, 2], board["rows"]
    assert ranked["imported"]["state"] == ranked["mine"]["state"] == "SUCCEEDED"
    assert ranked["mine"]["score"]["name"] == ranked["imported"]["score"]["name"] == "ndcg@10"
    assert "model.json" in (sweep / "report.html").read_text()
    assert f"Model of imported: {sweep / 'imported' / 'model'}" in done.stdout

    # 8. The kept model encodes data: the texts through the same encoder, then two_tower.encode.
    encoded, vectors = tmp_path / "encoded", tmp_path / "vectors"
    run(
        python(
            "two_tower.encode_texts", "--data", str(data), "--encoder", str(encoder), "--out", str(encoded)
        ),
        TRAINING_DIR,
    )
    run(
        python(
            "two_tower.encode",
            "--model",
            str(sweep / "imported" / "model"),
            "--data",
            str(encoded),
            "--out",
            str(vectors),
            "--top-k",
            "5",
        ),
        TRAINING_DIR,
    )
    q = np.load(vectors / "query_vectors.npy")
    d = np.load(vectors / "doc_vectors.npy")
    assert q.shape[0] == 400 and d.shape[0] == 800 and q.shape[1] == d.shape[1]
    top = list(csv.DictReader((vectors / "topk.csv").open()))
    assert len(top) == 400 * 5
    first = [r for r in top if r["query_id"] == top[0]["query_id"]]
    assert [int(r["rank"]) for r in first] == [1, 2, 3, 4, 5]
    assert [float(r["score"]) for r in first] == sorted((float(r["score"]) for r in first), reverse=True)
