"""Feature placement (device vs host), memory-mapped loading, compact ids, and the lagged DDP flags."""

import dataclasses
import socket

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from conftest import read_json

from two_tower import data as data_module
from two_tower.data import load_dataset
from two_tower.errors import UserError
from two_tower.features import HostFeatures, choose_placement, device_bytes
from two_tower.runtime import setup_runtime
from two_tower.stepflags import EVERY, StepFlags
from two_tower.train import main

FAST = ["--folds", "2", "--epochs", "2", "--batch-size", "32", "--hidden-dim", "32", "--device", "cpu"]


def _train(data_dir, out, placement, capsys):
    assert main(["--data", str(data_dir), "--out", str(out), *FAST, "--feature-placement", placement]) == 0
    log = capsys.readouterr().out
    return read_json(out / "results.json"), log


def test_host_placement_trains_exactly_the_model_device_placement_does(make_dataset, tmp_path, capsys):
    data_dir = make_dataset()
    on_device, log_device = _train(data_dir, tmp_path / "device", "device", capsys)
    on_host, log_host = _train(data_dir, tmp_path / "host", "host", capsys)
    assert "features on the device: --feature-placement device" in log_device
    assert "features on the host: --feature-placement host" in log_host
    for a, b in zip(on_device["folds"], on_host["folds"], strict=True):
        for key in ("ndcg10", "trainLoss", "testQueries"):
            assert a[key] == b[key], key
    assert on_device["ndcg10"] == on_host["ndcg10"]


def test_auto_placement_on_cpu_keeps_the_loaded_arrays(make_dataset, tmp_path, capsys):
    _, log = _train(make_dataset(), tmp_path / "auto", "auto", capsys)
    assert "features on the device: on cpu the device is host memory" in log


def test_the_host_path_copies_each_batch_one_step_ahead(make_dataset):
    data = load_dataset(make_dataset())
    rt = setup_runtime("cpu")
    feats = HostFeatures(data, rt)
    rows = [torch.tensor([0, 5, 7]), torch.tensor([3, 1])]
    feats.start_epoch(torch.cat(rows), rows)
    q, d = feats.inputs(rows[0], 0)
    assert 1 in feats.ready  # the next batch is gathered before this step's compute
    assert torch.equal(q, torch.from_numpy(data.query_features[data.pair_query[[0, 5, 7]]]))
    assert torch.equal(d, torch.from_numpy(data.doc_features[data.pair_doc[[0, 5, 7]]]))
    q2, _ = feats.inputs(rows[1], 1)
    assert torch.equal(q2, torch.from_numpy(data.query_features[data.pair_query[[3, 1]]]))
    # The first batch's tensors were not overwritten by the second's gather.
    assert torch.equal(q, torch.from_numpy(data.query_features[data.pair_query[[0, 5, 7]]]))


def test_auto_placement_on_a_gpu_keeps_features_on_the_host_when_they_do_not_fit(make_dataset):
    # No GPU needed: the choice reads the device type, the dtype and the free memory it is given.
    data = load_dataset(make_dataset())
    cpu = setup_runtime("cpu")
    gpu = dataclasses.replace(cpu, device=torch.device("cuda", 0), amp_dtype=torch.bfloat16, precision="bf16")
    fp32 = dataclasses.replace(gpu, amp_dtype=None, precision="fp32")
    assert device_bytes(data, gpu, 2, "labeled") < device_bytes(data, fp32, 2, "labeled")  # bf16 tables
    args = (data, gpu, 64, 32, 2, "labeled")
    placement, why = choose_placement("auto", *args, 10 * 2**30, "mem_get_info")
    assert placement == "device" and "10.0 GiB free (mem_get_info)" in why
    placement, why = choose_placement("auto", *args, 1000, "mem_get_info")
    assert placement == "host" and "features stay in host memory" in why
    assert choose_placement("device", *args, 1000, "x") == ("device", "--feature-placement device")


def test_embeddings_are_memory_mapped_and_shared_with_the_tensors(make_dataset):
    data = load_dataset(make_dataset())
    assert not data.query_features.flags.owndata and data.query_features.dtype == np.float32
    assert data.query_features.flags.writeable  # copy-on-write map: torch.from_numpy takes it as it is
    assert np.shares_memory(torch.from_numpy(data.doc_features).numpy(), data.doc_features)


def test_ids_are_a_compact_string_index_in_file_order(make_dataset):
    data_dir = make_dataset()
    data = load_dataset(data_dir)
    assert isinstance(data.query_ids, pd.Index) and data.query_ids.dtype == "str"
    assert list(data.doc_ids) == (data_dir / "doc_ids.txt").read_text().splitlines()
    assert isinstance(data.doc_ids[3], str)


def test_a_float64_file_is_converted_once_to_float32(make_dataset):
    data_dir = make_dataset()
    emb = np.load(data_dir / "doc_embeddings.npy")
    np.save(data_dir / "doc_embeddings.npy", emb.astype(np.float64))
    data = load_dataset(data_dir)
    assert data.doc_features.dtype == np.float32 and data.doc_features.flags.c_contiguous
    np.testing.assert_array_equal(data.doc_features, emb)


def test_fails_when_a_nan_row_sits_in_a_later_block_naming_the_first_and_the_count(make_dataset, monkeypatch):
    data_dir = make_dataset()
    emb = np.load(data_dir / "doc_embeddings.npy")
    emb[37, 2] = np.nan
    emb[90, 0] = np.inf
    emb[50, 1] = 1e20  # too large, but NaN/inf is reported first
    np.save(data_dir / "doc_embeddings.npy", emb)
    monkeypatch.setattr(data_module, "CHECK_BLOCK_BYTES", 10 * emb.shape[1] * 4)  # 10 rows per block
    with pytest.raises(UserError) as refused:
        load_dataset(data_dir)
    assert "row 37 (0-based) contains NaN or inf (2 such rows in all)" in str(refused.value)
    emb[37, 2] = emb[90, 0] = 0.0
    emb[71, 3] = -3e15
    np.save(data_dir / "doc_embeddings.npy", emb)
    with pytest.raises(UserError) as refused:
        load_dataset(data_dir)
    assert "row 50 (0-based) holds 1e+20" in str(refused.value) and "2 such rows" in str(refused.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_under_ddp_a_stop_is_agreed_within_twice_the_check_interval():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        rt = dataclasses.replace(setup_runtime("cpu"), world_size=2)  # distributed: the collective path
        flags = StepFlags(rt)
        seen = [flags.agree(True, False) for _ in range(2 * EVERY)]
        # Reduced at step EVERY, read and acted on at step 2 * EVERY.
        assert seen[: 2 * EVERY - 1] == [(False, False)] * (2 * EVERY - 1)
        assert seen[-1] == (True, False)
        later = [flags.agree(False, True) for _ in range(EVERY)]
        assert later[-1] == (True, False)  # the previous reduction's flags, read one interval later
        assert [flags.agree(False, False) for _ in range(EVERY)][-1] == (False, True)
    finally:
        dist.destroy_process_group()


def test_a_single_process_reads_its_flags_at_every_step():
    flags = StepFlags(setup_runtime("cpu"))
    assert flags.agree(True, False) == (True, False) and flags.agree(False, True) == (False, True)
