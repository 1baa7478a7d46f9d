"""python -m two_tower.import_data: a table of texts and labels becomes a dataset the trainer loads."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import TRAINING_DIR, subprocess_env

from two_tower.data import load_dataset
from two_tower.import_data import main

ROWS = [
    ("what is a cat", "a cat is a small feline", "1", ""),
    ("what is a cat", "dogs bark loudly", "0", ""),
    ("how tall is everest", "everest is 8849 metres", "2", ""),
    ("how tall is everest", "a cat is a small feline", "0", "0.73"),
    ("best pizza", 'pizza napoletana, with "quotes"\nand a newline', "1.0", "0.2"),
]


def _csv(tmp_path, rows=ROWS, header="query,doc,label,score"):
    path = tmp_path / "in.csv"
    frame = pd.DataFrame(rows, columns=header.split(","))
    frame.to_csv(path, index=False)
    return path


def test_import_writes_a_dataset_the_trainer_loads(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main([str(_csv(tmp_path)), "--out", str(out), "--weak-score", "score", "--chunk-rows", "2"]) == 0
    printed = capsys.readouterr().out
    assert "imported 5 rows (2 weak)" in printed and "rows/s" in printed and "pairs.csv" in printed
    data = load_dataset(out)
    assert data.kind == "text" and data.num_pairs == 5
    assert len(data.query_ids) == 3 and len(data.doc_ids) == 4  # deduplicated by text
    assert data.relevance.tolist() == [1, 0, 2, 0, 1]
    assert data.weak.tolist() == [False, False, False, True, True]
    assert data.weight.tolist() == pytest.approx([1, 1, 1, 0.73, 0.2])
    # The same text is one id, across rows and across imports.
    assert data.pair_doc[0] == data.pair_doc[3]
    again = tmp_path / "again"
    assert main([str(_csv(tmp_path)), "--out", str(again), "--weak-score", "score"]) == 0
    assert (again / "pairs.csv").read_bytes() == (out / "pairs.csv").read_bytes()


def test_parquet_input_with_id_columns_and_a_weak_flag(tmp_path):
    frame = pd.DataFrame(
        {
            "qid": ["a", "a", "b"],
            "q": ["x y", "x y", "z"],
            "did": ["1", "2", "1"],
            "d": ["one", "two", "one"],
            "rel": [1, 0, 1],
            "w": ["false", "true", "0"],
        }
    )
    frame.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "ds"
    args = [
        "--query",
        "q",
        "--doc",
        "d",
        "--label",
        "rel",
        "--weak",
        "w",
        "--query-id",
        "qid",
        "--doc-id",
        "did",
    ]
    assert main([str(tmp_path / "in.parquet"), "--out", str(out), *args]) == 0
    data = load_dataset(out)
    assert list(data.query_ids) == ["a", "b"] and list(data.doc_ids) == ["1", "2"]
    assert data.weak.tolist() == [False, True, False]
    assert (data.weight == 1).all()


def test_fails_when_a_label_is_a_fraction_pointing_to_weak_score(tmp_path, capsys):
    rows = [r[:3] for r in ROWS]
    rows[2] = ("q", "d", "0.73")
    out = tmp_path / "ds"
    assert main([str(_csv(tmp_path, rows, "query,doc,label")), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in.csv, line 4, column label: label '0.73' is not a whole number." in err
    assert "--weak-score" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".ds.import-*"))


def test_every_bad_row_is_reported_up_to_a_cap(tmp_path, capsys):
    rows = [("q", "d", "-1", "")] * 30 + [("q", "d", "1", "nan"), ("", "d", "1", "")]
    assert main([str(_csv(tmp_path, rows)), "--out", str(tmp_path / "ds"), "--weak-score", "score"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert sum("label '-1' is negative" in line for line in err) == 20
    assert "error: ... and 12 more bad rows (32 in all)." in err
    assert not (tmp_path / "ds").exists()


def test_fails_when_a_column_is_missing_naming_the_option(tmp_path, capsys):
    assert main([str(_csv(tmp_path)), "--out", str(tmp_path / "ds"), "--doc", "passage"]) == 2
    err = capsys.readouterr().err
    assert "column 'passage' missing" in err and "--doc" in err


def test_fails_when_an_id_has_two_texts(tmp_path, capsys):
    frame = pd.DataFrame({"qid": ["a", "a"], "query": ["x", "y"], "doc": ["d", "e"], "label": [1, 1]})
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert main([str(tmp_path / "in.csv"), "--out", str(tmp_path / "ds"), "--query-id", "qid"]) == 2
    err = capsys.readouterr().err
    assert "in.csv, line 3, column qid: query id 'a' has another text than on line 2." in err, err


def test_fails_when_the_output_is_not_empty(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([str(_csv(tmp_path)), "--out", str(out)]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_runs_as_a_module_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "two_tower.import_data",
            str(tmp_path / "none.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
        env=subprocess_env(),
        cwd=TRAINING_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_trainer_trains_on_an_imported_weak_scored_dataset(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    rows = []
    for q in range(24):
        topic = words[q % 10 : q % 10 + 3]
        rows.append((" ".join(topic) + f" q{q}", " ".join(topic), "1", ""))
        rows.append((" ".join(topic) + f" q{q}", " ".join(rng.choice(words, 3)), "0", ""))
        rows.append((" ".join(topic) + f" q{q}", " ".join(topic[:2]), "1", f"{rng.uniform():.2f}"))
    out = tmp_path / "ds"
    assert main([str(_csv(tmp_path, rows)), "--out", str(out), "--weak-score", "score"]) == 0
    from two_tower.train import main as train

    assert (
        train(
            [
                "--data",
                str(out),
                "--out",
                str(tmp_path / "run"),
                "--folds",
                "2",
                "--epochs",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )


def test_synth_table_round_trips_through_import(tmp_path):
    """The flat table synth writes (texts inline, float weak scores) imports to the same pairs as synth's own
    text layout: same texts per pair, labels, weak flags, and the scores as the weak rows' weights."""
    from two_tower.synth import generate

    table = tmp_path / "table.csv"
    generate(tmp_path / "syn", queries=40, docs=80, weak=2, text=True, table=table, seed=3)
    flat = pd.read_csv(table)
    assert flat.columns.tolist() == ["query", "document", "label", "weak_score"]
    scored = flat["weak_score"].notna()
    assert scored.sum() == 80 and flat.loc[scored, "weak_score"].between(0.3, 1.0).all()
    assert flat.loc[scored, "weak_score"].nunique() > 10  # floats, not a constant

    out = tmp_path / "ds"
    columns = ["--query", "query", "--doc", "document", "--weak-score", "weak_score"]
    assert main([str(table), "--out", str(out), *columns]) == 0
    data = load_dataset(out)
    assert data.num_pairs == len(flat)
    assert data.relevance.tolist() == flat["label"].tolist()
    assert data.weak.tolist() == scored.tolist()
    assert data.weight[scored.to_numpy()].tolist() == pytest.approx(flat.loc[scored, "weak_score"].tolist())
    assert (data.weight[~scored.to_numpy()] == 1).all()
    # Each imported pair joins the same two texts synth's own layout joins for that row.
    syn_pairs = pd.read_csv(tmp_path / "syn" / "pairs.csv")
    q_text = pd.read_csv(tmp_path / "syn" / "queries.csv").set_index("query_id")["text"]
    d_text = pd.read_csv(tmp_path / "syn" / "docs.csv").set_index("doc_id")["text"]
    assert syn_pairs["query_id"].map(q_text).tolist() == flat["query"].tolist()
    assert syn_pairs["doc_id"].map(d_text).tolist() == flat["document"].tolist()
