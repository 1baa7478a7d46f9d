import io

import numpy as np
import pandas as pd
from conftest import read_json

from two_tower import synth
from two_tower.progress import STATUS_KEYS, Progress


def test_progress_writes_plain_lines_in_a_log_and_status_json(tmp_path):
    stream = io.StringIO()
    progress = Progress(tmp_path, True, folds=2, epochs=3, total_steps=100, interval_s=0, stream=stream)
    progress.update(fold=1, epoch=2, step=7, done_steps=50, loss=0.5, examples_per_second=1234.0)
    line = stream.getvalue()
    assert line.startswith("progress  50.0% fold 2/2 epoch 3/3 step 7 loss 0.5000 1,234 ex/s ETA")
    assert "\r" not in line
    status = read_json(tmp_path / "status.json")
    assert set(status) == {"state", *STATUS_KEYS, "updatedAt"}
    assert status["state"] == "TRAINING" and status["progress"] == 0.5 and status["updatedAt"].endswith("Z")
    # The first step's time stays in every later status, so a reader that comes late still learns it.
    first = status["firstStepAt"]
    assert isinstance(first, float)
    progress.write_status("EVALUATING")
    assert read_json(tmp_path / "status.json")["firstStepAt"] == first


def test_progress_is_silent_off_rank_zero(tmp_path):
    stream = io.StringIO()
    Progress(tmp_path, False, 2, 3, 100, 0, stream).update(
        fold=0, epoch=0, step=1, done_steps=1, loss=1.0, examples_per_second=1.0
    )
    assert stream.getvalue() == "" and not (tmp_path / "status.json").exists()


def test_synth_writes_the_dataset_format_with_weak_rows(tmp_path):
    out = synth.generate(tmp_path / "d", queries=20, docs=50, dim=8, candidates=5, positives=2, weak=1)
    pairs = pd.read_csv(out / "pairs.csv")
    assert list(pairs.columns) == ["query_id", "doc_id", "relevance", "weak"]
    assert (pairs.groupby("query_id")["relevance"].max() == 2).all()
    assert pairs["weak"].sum() == 20
    assert np.load(out / "query_embeddings.npy").shape == (20, 8)
    assert len((out / "doc_ids.txt").read_text().splitlines()) == 50
    again = synth.generate(tmp_path / "e", queries=20, docs=50, dim=8, candidates=5, positives=2, weak=1)
    assert (again / "pairs.csv").read_bytes() == (out / "pairs.csv").read_bytes()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_bar_on_a_terminal_and_log_lines_go_above_it(tmp_path):
    stream = Terminal()
    progress = Progress(tmp_path, True, folds=1, epochs=1, total_steps=4, interval_s=0, stream=stream)
    progress.update(fold=0, epoch=0, step=1, done_steps=1, loss=1.0, examples_per_second=10.0)
    progress.message("fold 1/1 epoch 1/1: mean train loss 1.0000")
    text = stream.getvalue()
    assert text.startswith("\r[######..................]  25.0% fold 1/1")
    assert text.endswith("\r\x1b[Kfold 1/1 epoch 1/1: mean train loss 1.0000\n")
