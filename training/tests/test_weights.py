"""Sample weights (the pairs file's optional ``weight`` column): parsed and refused like every other column,
and weighting each row's term of the in-batch softmax loss."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import edit_pairs, read_json

from two_tower.data import load_dataset
from two_tower.errors import UserError
from two_tower.loss import batch_weight, in_batch_softmax_loss, pair_weights
from two_tower.train import main


def _batch(seed=0, rows=6, columns=6):
    torch.manual_seed(seed)
    q = F.normalize(torch.randn(rows, 8), dim=-1)
    d = F.normalize(torch.randn(columns, 8), dim=-1)
    docs = torch.arange(columns)
    return q, d, torch.arange(rows), docs[:rows], docs


def test_weights_all_one_give_exactly_the_unweighted_loss():
    q, d, labels, qdoc, docs = _batch()
    plain = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05)
    ones = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05, weight=torch.ones(6))
    assert torch.allclose(plain, ones, rtol=1e-6, atol=0)
    # What the trainer runs: a dataset whose weights are all 1 takes the unweighted path itself.
    assert pair_weights(np.ones(6, dtype=np.float32), torch.device("cpu")) is None
    assert batch_weight(None, torch.arange(6)) == 6


def test_a_weight_of_zero_gives_the_loss_without_that_row():
    q, d, labels, qdoc, docs = _batch()
    weight = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    weighted = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05, weight=weight)
    keep = torch.tensor([0, 1, 3, 4, 5])
    # The row's term leaves the loss; its document stays a column (a negative for the other queries).
    without = in_batch_softmax_loss(q[keep], d, labels[keep], qdoc[keep], docs, 0.05)
    assert torch.allclose(weighted, without, rtol=1e-6, atol=0)
    assert not torch.allclose(in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05), without)


def test_weights_give_the_weighted_mean_of_the_rows_terms():
    q, d, labels, qdoc, docs = _batch()
    terms = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05, reduction="none")
    weight = torch.tensor([0.73, 2.0, 0.1, 1.0, 0.0, 3.5])
    expected = (terms * weight).sum() / weight.sum()
    got = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05, weight=weight)
    assert torch.allclose(got, expected, rtol=1e-6)
    summed = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05, reduction="sum", weight=weight)
    assert torch.allclose(summed, (terms * weight).sum(), rtol=1e-6)


def test_a_batch_whose_weights_are_all_zero_has_loss_zero_not_nan():
    q, d, labels, qdoc, docs = _batch()
    zero = torch.zeros(6)
    loss = in_batch_softmax_loss(q, d, labels, qdoc, docs, 0.05, weight=zero)
    assert loss.item() == 0.0
    assert batch_weight(zero, torch.arange(6)).item() == 1.0


def _with_weights(data, values):
    def edit(lines):
        lines[0] += ",weight"
        for i, value in enumerate(values, start=1):
            lines[i] += f",{value}"
        for i in range(len(values) + 1, len(lines)):
            lines[i] += ","

    edit_pairs(data, edit)


def test_the_weight_column_is_read_as_float32_with_empty_as_one(make_dataset):
    data = make_dataset()
    _with_weights(data, ["0.73", "", "2", "0"])
    loaded = load_dataset(data)
    assert loaded.weight.dtype == np.float32
    assert loaded.weight[:5].tolist() == pytest.approx([0.73, 1.0, 2.0, 0.0, 1.0])
    assert (loaded.weight[4:] == 1).all()


def test_without_a_weight_column_every_row_weighs_one(make_dataset):
    loaded = load_dataset(make_dataset())
    assert loaded.weight.dtype == np.float32 and (loaded.weight == 1).all()
    assert len(loaded.weight) == loaded.num_pairs


def test_parquet_weights_with_nulls_as_one(make_dataset):
    data = make_dataset()
    frame = pd.read_csv(data / "pairs.csv", dtype={"query_id": str, "doc_id": str})
    frame["weight"] = [0.5, None] + [1.5] * (len(frame) - 2)
    (data / "pairs.csv").unlink()
    frame.to_parquet(data / "pairs.parquet")
    loaded = load_dataset(data)
    assert loaded.weight[:3].tolist() == pytest.approx([0.5, 1.0, 1.5])


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("nan", "weight 'nan' is not a finite number"),
        ("inf", "weight 'inf' is not a finite number"),
        ("-0.5", "weight '-0.5' is negative"),
        ("heavy", "weight 'heavy' is not a finite number"),
        ("1e9", "is above 1e+06"),
    ],
)
def test_fails_when_a_weight_is_bad_naming_row_and_column(make_dataset, value, needle):
    data = make_dataset()
    _with_weights(data, ["1", "1", value])
    with pytest.raises(UserError) as err:
        load_dataset(data)
    message = err.value.message()
    assert needle in message, message
    assert "pairs.csv, line 4, column weight" in message
    assert "Fix:" in message


def test_fails_when_every_positive_row_weighs_zero(make_dataset):
    data = make_dataset()
    rows = len((data / "pairs.csv").read_text().splitlines()) - 1
    _with_weights(data, ["0"] * rows)
    with pytest.raises(UserError, match="every row with relevance > 0 has weight 0"):
        load_dataset(data)


def test_a_resume_with_changed_weights_is_refused_as_a_data_change(make_dataset, tmp_path, capsys):
    data = make_dataset()
    out = tmp_path / "out"
    args = ["--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1", "--device", "cpu"]
    assert main(args) == 0
    _with_weights(data, ["0.5"])
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "different data (pairs.csv differ)" in err, err


def test_weights_change_training_but_not_evaluation_inputs(make_dataset, tmp_path):
    data = make_dataset()
    base = ["--folds", "2", "--epochs", "1", "--device", "cpu", "--seed", "3"]
    assert main(["--data", str(data), "--out", str(tmp_path / "a"), *base]) == 0
    rows = len((data / "pairs.csv").read_text().splitlines()) - 1
    _with_weights(data, ["1"] * rows)
    assert main(["--data", str(data), "--out", str(tmp_path / "b"), *base]) == 0
    weights = [f"{0.25 + (i % 4) * 0.5}" for i in range(rows)]
    lines = (data / "pairs.csv").read_text().splitlines()
    lines = [lines[0]] + [row.rsplit(",", 1)[0] + f",{w}" for row, w in zip(lines[1:], weights, strict=True)]
    (data / "pairs.csv").write_text("\n".join(lines) + "\n")
    assert main(["--data", str(data), "--out", str(tmp_path / "c"), *base]) == 0
    a, b, c = (read_json(tmp_path / x / "results.json") for x in "abc")
    # Weights all 1: exactly today's training. Other weights: another training loss, the same test queries.
    assert [f["trainLoss"] for f in a["folds"]] == [f["trainLoss"] for f in b["folds"]]
    assert [f["trainLoss"] for f in a["folds"]] != [f["trainLoss"] for f in c["folds"]]
    assert [f["testQueries"] for f in a["folds"]] == [f["testQueries"] for f in c["folds"]]
