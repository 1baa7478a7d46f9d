"""Every bad-input case stops before training: exit 2, one message naming file, place and fix, no
traceback, and nothing in OUT that claims success."""

import json

import numpy as np
import pytest
from conftest import edit_pairs, make_relevance_negative, read_json, run_trainer

from two_tower.train import main


def run_main(capsys, data, out, *extra):
    code = main(["--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1", *extra])
    return code, capsys.readouterr().err


def assert_refused(code, err, out, *needles):
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("error: ") and "Fix:" in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (out / "results.json").exists()
    assert read_json(out / "status.json")["state"] == "FAILED"
    assert not (out / "checkpoints").exists()


def test_fails_when_pairs_file_is_missing(make_dataset, tmp_path, capsys):
    data = make_dataset()
    (data / "pairs.csv").unlink()
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "no pairs.csv or pairs.parquet", str(data))


def test_fails_when_data_directory_is_missing(tmp_path, capsys):
    code, err = run_main(capsys, tmp_path / "nowhere", tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "does not exist")


def test_fails_when_a_column_is_missing(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(0, "query_id,doc_id,label,weak"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "column 'relevance' is missing", "header")


def test_fails_when_a_query_id_has_no_embedding(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(3, "ghost," + lines[3].split(",", 1)[1]))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(
        code, err, tmp_path / "out", "pairs.csv", "line 4, column query_id", "'ghost'", "query_ids.txt"
    )


def test_fails_when_a_doc_id_has_no_embedding(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(2, lines[2].split(",")[0] + ",nodoc,1,0"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "line 3, column doc_id", "'nodoc'", "doc_ids.txt")


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_fails_when_embeddings_are_not_finite(make_dataset, tmp_path, capsys, bad):
    data = make_dataset()
    emb = np.load(data / "doc_embeddings.npy")
    emb[5, 1] = bad
    np.save(data / "doc_embeddings.npy", emb)
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "doc_embeddings.npy", "row 5", "NaN or inf")


def test_fails_when_embedding_dimensions_differ(make_dataset, tmp_path, capsys):
    data = make_dataset()
    np.save(data / "doc_embeddings.npy", np.zeros((120, 5), dtype=np.float32))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "doc_embeddings.npy", "8 columns", "5")


def test_fails_when_ids_and_embedding_rows_differ(make_dataset, tmp_path, capsys):
    data = make_dataset()
    ids = (data / "query_ids.txt").read_text().splitlines()
    (data / "query_ids.txt").write_text("\n".join(ids[:-1]) + "\n")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "query_ids.txt", "59 ids but 60 embedding rows")


def test_fails_when_an_embedding_file_is_missing(make_dataset, tmp_path, capsys):
    data = make_dataset()
    (data / "query_embeddings.npy").unlink()
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "query_embeddings.npy", "missing")


def test_fails_when_dataset_is_empty(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__delitem__(slice(1, None)))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "empty")


def test_fails_when_fewer_queries_than_folds(make_dataset, tmp_path, capsys):
    data = make_dataset(queries=3, docs=20)
    code, err = run_main(capsys, data, tmp_path / "out", "--folds", "5")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "only 3 queries", "folds")


def test_fails_when_relevance_is_negative(make_dataset, tmp_path, capsys):
    data = make_dataset()
    make_relevance_negative(data, line=6)
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 6, column relevance", "negative")


def test_fails_when_relevance_is_not_an_integer(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(5, ",".join(lines[5].split(",")[:2]) + ",high,0"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "line 6, column relevance", "'high'")


def test_fails_when_job_file_has_a_bad_setting(make_dataset, tmp_path, capsys):
    data = make_dataset()
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"train": {"folds": 1}}))
    code, err = run_main(capsys, data, tmp_path / "out", "--config", str(job), "--folds", "1")
    assert_refused(code, err, tmp_path / "out", "job.json", "field folds")


def test_fails_with_exit_code_2_and_no_traceback_as_a_process(make_dataset, tmp_path):
    data = make_dataset()
    (data / "doc_ids.txt").unlink()
    proc = run_trainer("--data", str(data), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "doc_ids.txt" in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()
