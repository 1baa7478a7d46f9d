"""Every bad-input case stops before training: exit 2, one message naming file, place and fix, no
traceback, and nothing in OUT that claims success."""

import contextlib
import json
import pickle
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import edit_pairs, make_relevance_negative, read_json, run_trainer

from two_tower import checkpoint as ckpt
from two_tower.config import TrainConfig
from two_tower.data import load_dataset
from two_tower.errors import UserError, quote
from two_tower.model import TwoTower, training_bytes
from two_tower.train import check_memory, main


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


def write_bytes_into_pairs(data, line, old, new):
    """Replace ``old`` by the raw bytes ``new`` on ``line`` (1-based, header is 1) of pairs.csv."""
    lines = (data / "pairs.csv").read_bytes().split(b"\n")
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    (data / "pairs.csv").write_bytes(b"\n".join(lines))


def test_fails_when_pairs_csv_is_not_utf8_naming_the_line(make_dataset, tmp_path, capsys):
    data = make_dataset()
    write_bytes_into_pairs(data, 5, b"q", b"\xe9q")  # a Latin-1 "é"
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 5", "not UTF-8", "0xe9")


@pytest.mark.parametrize("name", ["query_ids.txt", "doc_ids.txt"])
def test_fails_when_an_id_file_is_not_utf8_naming_the_line(make_dataset, tmp_path, capsys, name):
    data = make_dataset()
    lines = (data / name).read_bytes().split(b"\n")
    lines[2] = b"\xff" + lines[2]
    (data / name).write_bytes(b"\n".join(lines))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", name, "line 3", "not UTF-8", "0xff")


@pytest.mark.parametrize("damage", ["random bytes", "truncated"])
def test_fails_when_pairs_parquet_is_corrupt(make_dataset, tmp_path, capsys, damage):
    data = make_dataset(fmt="parquet")
    path = data / "pairs.parquet"
    raw = path.read_bytes()
    path.write_bytes(
        np.random.default_rng(0).bytes(4096) if damage == "random bytes" else raw[: len(raw) // 2]
    )
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.parquet", "not a readable Parquet file")
    assert err.count("\n") == 1


def _npy_truncated(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])


def _npy_random(path):
    path.write_bytes(np.random.default_rng(1).bytes(3000))


def _npy_npz(path):
    with open(path, "wb") as fh:
        np.savez(fh, emb=np.zeros((120, 8), dtype=np.float32))


def _npy_text(path):
    path.write_text("0.1,0.2,0.3\n0.4,0.5,0.6\n")


def _npy_object_array(path):
    np.save(path, np.array([[0.1, "x"]] * 120, dtype=object), allow_pickle=True)


def _npy_raw_pickle(path):
    path.write_bytes(pickle.dumps([[0.1] * 8] * 120))


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        (_npy_truncated, ["truncated", "shape (120, 8) float32", "3,840 bytes"]),
        (_npy_random, ["not a NumPy .npy file"]),
        (_npy_npz, ["an .npz archive", "numpy.save"]),
        (_npy_text, ["not a NumPy .npy file", "'0.1,0.2"]),
        (_npy_object_array, ["Python objects", "float"]),
        (_npy_raw_pickle, ["a Python pickle, not a NumPy .npy file"]),
    ],
    ids=["truncated", "random bytes", "npz", "text", "object array", "raw pickle"],
)
def test_fails_when_an_embedding_file_is_not_a_float_npy(make_dataset, tmp_path, capsys, damage, needles):
    data = make_dataset()
    damage(data / "doc_embeddings.npy")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "doc_embeddings.npy", *needles)
    if damage is not _npy_object_array:
        assert "allow_pickle" not in err and "pickled data" not in err


def test_fails_when_a_quote_is_never_closed_naming_its_line(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(6, '"' + lines[6]))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 7", "quote")


def test_fails_when_a_row_has_too_many_fields_naming_the_line(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(8, lines[8] + ",extra"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 9", "5 fields", "the header has 4")


def test_fails_when_every_row_has_one_field_more_than_the_header(make_dataset, tmp_path, capsys):
    # pandas would silently take the first column as the index and shift every column by one.
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(slice(1, None), [f"{x},0" for x in lines[1:]]))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 2", "5 fields", "the header has 4")


def test_fails_when_a_row_has_too_few_fields_naming_the_line(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(9, lines[9].split(",")[0]))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 10", "1 field", "the header has 4")


def test_fails_when_pairs_csv_is_an_empty_file(make_dataset, tmp_path, capsys):
    data = make_dataset()
    (data / "pairs.csv").write_bytes(b"")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "the file is empty")


def test_fails_when_pairs_csv_has_only_its_header(make_dataset, tmp_path, capsys):
    data = make_dataset()
    (data / "pairs.csv").write_text("query_id,doc_id,relevance,weak\n")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "no rows")


def test_fails_when_a_column_appears_twice_in_the_header(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(0, "query_id,doc_id,relevance,relevance"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "header", "'relevance' appears twice")


def assert_refused_in_one_line(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("error: ") and "Fix:" in err and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_fails_when_out_is_an_existing_file(make_dataset, tmp_path, capsys):
    data = make_dataset()
    out = tmp_path / "out"
    out.write_text("my notes\n")
    code, err = run_main(capsys, data, out)
    assert_refused_in_one_line(code, err, str(out), "--out", "is a file")
    assert out.read_text() == "my notes\n"


def test_fails_when_the_parent_of_out_is_a_file(make_dataset, tmp_path, capsys):
    data = make_dataset()
    (tmp_path / "notes").write_text("my notes\n")
    out = tmp_path / "notes" / "out"
    code, err = run_main(capsys, data, out)
    assert_refused_in_one_line(code, err, str(tmp_path / "notes"), "--out", "is a file")
    assert (tmp_path / "notes").read_text() == "my notes\n"


def test_fails_when_out_is_a_broken_symbolic_link(make_dataset, tmp_path, capsys):
    data = make_dataset()
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    code, err = run_main(capsys, data, out)
    assert_refused_in_one_line(code, err, str(out), "symbolic link", "does not exist")


@pytest.mark.parametrize("inside", [True, False], ids=["a new directory in it", "the directory itself"])
def test_fails_when_out_is_on_a_read_only_disk(make_dataset, tmp_path, capsys, tmpfs, inside):
    data = make_dataset()
    disk = tmpfs("ro", "2m", readonly=True)
    out = disk / "out" if inside else disk
    code, err = run_main(capsys, data, out)
    assert_refused_in_one_line(code, err, str(disk), "read-only")
    assert list(disk.iterdir()) == []


def test_fails_when_the_disk_fills_up_keeping_the_checkpoints_already_written(
    make_dataset, tmp_path, capsys, tmpfs
):
    # hiddenDim 2048 on 8-d inputs: a mid-fold checkpoint (weights + 2 AdamW states) is about 0.8 MiB, so
    # on a 1 MiB disk the first one fits, the end-of-fold one (no model) fits, the next one does not.
    data = make_dataset()
    out = tmpfs("full", "1m") / "out"
    args = ["--hidden-dim", "2048", "--device", "cpu"]
    code, err = run_main(capsys, data, out, *args)
    assert_refused_in_one_line(code, err, str(out), "no space left")
    kept = ckpt.checkpoint_files(out / "checkpoints")
    assert len(kept) == 2 and all(ckpt.verify(p) is None for p in kept), kept
    assert not list(out.rglob("*.tmp")), "partial files are removed"
    assert not (out / "results.json").exists()
    assert read_json(out / "status.json")["state"] == "FAILED"
    # The kept checkpoints are whole: the same --out on a disk with room resumes from them and finishes.
    roomy = tmp_path / "roomy"
    shutil.copytree(out, roomy)
    code = main(["--data", str(data), "--out", str(roomy), "--folds", "2", "--epochs", "1", *args])
    assert code == 0
    assert "resume: from fold 2 epoch 1 step 0 (1 folds done)" in capsys.readouterr().out


def test_fails_when_the_disk_is_full_keeping_the_previous_results(make_dataset, tmp_path, capsys, tmpfs):
    data = make_dataset()
    first = tmp_path / "first"
    assert run_main(capsys, data, first)[0] == 0
    disk = tmpfs("full", "1m")
    out = disk / "out"
    shutil.copytree(first, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with open(disk / "filler", "wb", buffering=0) as fh:  # fill the disk to the last byte
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
    code, err = run_main(capsys, data, out)
    assert_refused_in_one_line(code, err, str(out), "no space left")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("via", ["flag", "job file"])
def test_fails_when_the_model_cannot_fit_in_memory(make_dataset, tmp_path, capsys, monkeypatch, via):
    data = make_dataset()
    monkeypatch.setenv("SPOT_SWEEP_MEMORY_BYTES", str(200 * 2**20))
    if via == "flag":
        extra = ["--hidden-dim", "65536"]
        field = "hiddenDim"
    else:
        job = tmp_path / "job.json"
        job.write_text(json.dumps({"train": {"hiddenDim": 65536}}))
        extra = ["--config", str(job)]
        field = "field train.hiddenDim"
    code, err = run_main(capsys, data, tmp_path / "out", "--device", "cpu", *extra)
    assert_refused(code, err, tmp_path / "out", field, "65536", "200 MiB", "SPOT_SWEEP_MEMORY_BYTES")
    assert "needs about" in err and "lower hiddenDim to at most" in err


def test_on_a_gpu_the_memory_check_asks_cuda_and_counts_the_data_copied_there(make_dataset, monkeypatch):
    # No GPU needed: the check only reads the device type and torch.cuda.mem_get_info.
    monkeypatch.delenv("SPOT_SWEEP_MEMORY_BYTES", raising=False)
    data = load_dataset(make_dataset())
    gpu = SimpleNamespace(device=torch.device("cuda", 0), world_size=1)
    config = TrainConfig(hidden_dim=4096)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**20, 80 * 2**30))
    with pytest.raises(UserError) as refused:
        check_memory(config, data, gpu, None)
    assert "10 MiB is available on cuda:0" in str(refused.value)
    assert "torch.cuda.mem_get_info" in str(refused.value) and "of data" in str(refused.value)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (80 * 2**30, 80 * 2**30))
    check_memory(config, data, gpu, None)


def test_memory_estimate_counts_every_parameter():
    for text in (False, True):
        model = TwoTower(24, 40, text=text)
        params = sum(p.numel() for p in model.parameters())
        assert training_bytes(24, 40, text, batch_size=0) == params * 16


@pytest.mark.parametrize("via", ["flag", "job file"])
def test_fails_when_examples_is_more_than_the_data_has(make_dataset, tmp_path, capsys, via):
    data = make_dataset()  # 60 queries x 6 judged documents = 360 rows
    if via == "flag":
        extra = ["--max-examples", "5000"]
    else:
        job = tmp_path / "job.json"
        job.write_text(json.dumps({"examples": 5000, "train": {}}))
        extra = ["--config", str(job)]
    code, err = run_main(capsys, data, tmp_path / "out", *extra)
    assert_refused(
        code, err, tmp_path / "out", "pairs.csv", "examples", "5,000", "360 rows", "lower examples"
    )


def test_quote_cuts_long_values_and_says_how_much_is_left():
    assert quote("abc") == "'abc'"
    assert quote("x" * 100, limit=10) == "'xxxxxxxxxx'…(90 more characters)"
    assert quote(12) == "12"


def test_fails_with_a_short_message_when_a_value_is_huge(make_dataset, tmp_path, capsys):
    data = make_dataset()
    huge = "q" * 20_000_000
    edit_pairs(data, lambda lines: lines.__setitem__(3, huge + "," + lines[3].split(",", 1)[1]))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "line 4, column query_id", "more characters")
    assert len(err) < 500, len(err)


def test_fails_when_relevance_is_not_a_number(make_dataset, tmp_path, capsys):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(5, ",".join(lines[5].split(",")[:2]) + ",nan,0"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "line 6, column relevance", "'nan'")


@pytest.mark.parametrize("value", ["inf", "1e30"])
def test_fails_when_relevance_is_infinite_or_huge(make_dataset, tmp_path, capsys, value):
    data = make_dataset()
    edit_pairs(data, lambda lines: lines.__setitem__(5, ",".join(lines[5].split(",")[:2]) + f",{value},0"))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "line 6, column relevance", value)


def test_fails_when_an_id_file_has_the_same_id_twice_naming_both_lines(make_dataset, tmp_path, capsys):
    data = make_dataset()
    ids = (data / "doc_ids.txt").read_text().splitlines()
    ids[6] = ids[1]
    (data / "doc_ids.txt").write_text("\n".join(ids) + "\n")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "doc_ids.txt", "lines 2 and 7", "appears twice")


def test_fails_when_an_id_file_has_a_blank_line(make_dataset, tmp_path, capsys):
    data = make_dataset()
    ids = (data / "query_ids.txt").read_text().splitlines()
    ids[4] = ""
    (data / "query_ids.txt").write_text("\n".join(ids) + "\n")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "query_ids.txt", "line 5", "empty")


def test_fails_when_an_embedding_value_is_too_large_to_train_on(make_dataset, tmp_path, capsys):
    # Finite, but its square overflows float32: training would end in "the training diverged" instead.
    data = make_dataset()
    emb = np.load(data / "query_embeddings.npy")
    emb[7, 2] = 3e37
    np.save(data / "query_embeddings.npy", emb)
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "query_embeddings.npy", "row 7", "3e+37", "too large")


def test_fails_when_an_embedding_has_no_columns(make_dataset, tmp_path, capsys):
    data = make_dataset()
    np.save(data / "query_embeddings.npy", np.zeros((60, 0), dtype=np.float32))
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "query_embeddings.npy", "shape (60, 0)")


def test_fails_when_pairs_csv_is_a_directory(make_dataset, tmp_path, capsys):
    data = make_dataset()
    (data / "pairs.csv").unlink()
    (data / "pairs.csv").mkdir()
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "directory")


def test_fails_when_the_data_path_is_a_file(make_dataset, tmp_path, capsys):
    data = make_dataset()
    code, err = run_main(capsys, data / "pairs.csv", tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.csv", "not a directory")


@pytest.mark.parametrize("damage", ["not utf-8", "a directory"])
def test_fails_when_the_job_file_is_unreadable(make_dataset, tmp_path, capsys, damage):
    data = make_dataset()
    job = tmp_path / "job.json"
    if damage == "a directory":
        job.mkdir()
    else:
        job.write_bytes(b'{"train": {"seed": 1}, "sweep": "caf\xe9"}')
    code, err = run_main(capsys, data, tmp_path / "out", "--config", str(job))
    assert_refused(code, err, tmp_path / "out", "job.json")


def test_fails_when_a_text_file_has_the_same_id_twice_naming_both_lines(make_dataset, tmp_path, capsys):
    data = make_dataset(text=True)
    lines = (data / "queries.csv").read_text().splitlines()
    lines[8] = lines[2].split(",", 1)[0] + "," + lines[8].split(",", 1)[1]
    (data / "queries.csv").write_text("\n".join(lines) + "\n")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "queries.csv", "'q1' appears twice (line 3 and line 9)")


def test_fails_when_a_text_file_row_has_no_id(make_dataset, tmp_path, capsys):
    data = make_dataset(text=True)
    lines = (data / "docs.csv").read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]
    (data / "docs.csv").write_text("\n".join(lines) + "\n")
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "docs.csv", "line 4", "doc_id")


def _bom(data):
    path = data / "pairs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    for name in ("query_ids.txt", "doc_ids.txt"):
        (data / name).write_bytes(b"\xef\xbb\xbf" + (data / name).read_bytes())


def _crlf(data):
    for name in ("pairs.csv", "query_ids.txt", "doc_ids.txt"):
        (data / name).write_bytes((data / name).read_bytes().replace(b"\n", b"\r\n"))


def _blank_lines(data):
    edit_pairs(data, lambda lines: lines.insert(5, ""))
    with open(data / "pairs.csv", "a") as fh:
        fh.write("\n\n")


@pytest.mark.parametrize("change", [_bom, _crlf, _blank_lines], ids=["utf-8 bom", "crlf", "blank lines"])
def test_accepts_a_bom_windows_line_endings_and_blank_lines(make_dataset, tmp_path, capsys, change):
    data = make_dataset()
    reference = run_main(capsys, data, tmp_path / "reference")
    assert reference[0] == 0, reference[1]
    change(data)
    code, err = run_main(capsys, data, tmp_path / "out")
    assert code == 0, err
    ndcg = [read_json(tmp_path / d / "results.json")["ndcg10"]["mean"] for d in ("reference", "out")]
    assert ndcg[0] == ndcg[1]


def test_pairs_parquet_with_nan_relevance_is_refused(make_dataset, tmp_path, capsys):
    data = make_dataset(fmt="parquet")
    frame = pd.read_parquet(data / "pairs.parquet")
    frame["relevance"] = frame["relevance"].astype(float)
    frame.loc[4, "relevance"] = float("nan")
    frame.to_parquet(data / "pairs.parquet", index=False)
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.parquet", "row 5, column relevance", "nan")


def test_fails_when_a_parquet_id_is_null(make_dataset, tmp_path, capsys):
    data = make_dataset(fmt="parquet")
    frame = pd.read_parquet(data / "pairs.parquet")
    frame["doc_id"] = frame["doc_id"].astype(object)
    frame.loc[9, "doc_id"] = None
    frame.to_parquet(data / "pairs.parquet", index=False)
    code, err = run_main(capsys, data, tmp_path / "out")
    assert_refused(code, err, tmp_path / "out", "pairs.parquet", "row 10, column doc_id", "null")
