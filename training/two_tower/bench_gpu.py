"""``python -m two_tower.bench gpu``: every figure the cost model and issue 14's targets need, from one run.

1. The trainer's examples/s on a config-O-shaped dataset (876K pairs x 384-d) against the same model and loss
   trained through a per-example ``Dataset`` + ``DataLoader`` loop on the same device, and the ratio
   (target: >= 20x on a GPU).
2. The full config-O-shaped cross-validation (10 folds x 3 epochs), evaluation included: wall time (target:
   under 60 s on one H100/H200-class GPU) and peak GPU memory; the plan's estimate for it
   (``lib/cost/throughput.ts``, H100 figure) against the measured time (target: within 25%).
3. The same data with ``--feature-placement host`` (batches copied from host memory) and, on CUDA, with
   ``--compile reduce-overhead`` (CUDA graphs): examples/s of each.
4. The worst case, 16M pairs with every query and document distinct (49 GB of fp32 features): measured
   over 2 folds x 1 epoch of a 10-fold split where it fits this machine's host memory, and projected to
   10 folds x 3 epochs on this GPU and on an 8-GPU node; whether its features fit one 40 GB A100 in the
   device dtype.

``--quick`` shrinks every size so that the command runs on a CPU in seconds (tests/test_bench.py); its
figures then mean nothing. ``--json PATH`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from contract import train_properties

from .config import TrainConfig
from .data import Dataset
from .features import choose_placement, device_bytes
from .interrupt import StopRequest
from .runtime import Runtime, setup_runtime

THROUGHPUT_TS = Path(__file__).resolve().parents[2] / "lib" / "cost" / "throughput.ts"
A100_40GB = 40 * 10**9
NODE_GPUS = 8


def synthetic(pairs: int, dim: int, queries: int, docs: int, seed: int = 0) -> Dataset:
    """Embeddings and pairs in the requested shape, for timing only (nothing to learn). Large tables are
    filled by repeating one random block (generating 49 GB of normal numbers would take minutes)."""
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((min(1 << 16, max(queries, docs)), dim), dtype=np.float32)

    def table(rows: int) -> np.ndarray:
        out = np.empty((rows, dim), dtype=np.float32)
        for start in range(0, rows, len(block)):
            n = min(len(block), rows - start)
            out[start : start + n] = block[:n]
        return out

    def ids(prefix: str, n: int) -> pd.Index:
        return pd.Index(np.char.add(prefix, np.arange(n).astype(str)), dtype="str")

    distinct = queries == pairs and docs == pairs
    pair_query = np.arange(pairs) if distinct else np.sort(rng.integers(0, queries, pairs))
    pair_doc = rng.permutation(pairs) if distinct else rng.integers(0, docs, pairs)
    return Dataset(
        "embeddings",
        ids("q", queries),
        ids("d", docs),
        table(queries),
        table(docs),
        pair_query.astype(np.int64),
        pair_doc.astype(np.int64),
        np.ones(pairs, dtype=np.int64),  # every pair a training example, as config O's
        np.zeros(pairs, dtype=bool),
        [],
    )


def _assignment(data: Dataset, folds: int, seed: int) -> dict[str, int]:
    """query id -> fold, dealt from a seeded permutation (vectorised: assign_folds sorts Python strings,
    too slow for 16M queries; the benchmark needs any balanced split, not the trainer's)."""
    perm = np.random.default_rng(seed).permutation(len(data.query_ids))
    return dict(zip(data.query_ids[perm], (np.arange(len(perm)) % folds).tolist(), strict=True))


def _train(
    data: Dataset, cfg: TrainConfig, rt: Runtime, placement: str, folds_run: int | None = None
) -> dict[str, Any]:
    """One Trainer run; its results plus wall seconds and peak device memory. ``folds_run`` stops after that
    many folds of a ``cfg.folds``-fold split (the worst case measures 2 of 10)."""
    from .train import Trainer

    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(rt.device)
    with tempfile.TemporaryDirectory() as tmp:
        folds_of = _assignment(data, cfg.folds, cfg.seed)
        trainer = Trainer(cfg, data, Path(tmp), rt, StopRequest(), folds_of, {}, 3600, placement)
        start = time.perf_counter()
        if folds_run is None:
            results = trainer.run()
            folds = results["folds"]
            eps = results["examplesPerSecond"]
        else:
            state = trainer._fresh_state()
            trainer.done_steps = 0
            for _ in range(folds_run):
                trainer._train_fold(state)
            folds = state["results"]
            eps = state["examples"] / max(state["train_seconds"], 1e-9)
        wall = time.perf_counter() - start
        del trainer
    peak = torch.cuda.max_memory_allocated(rt.device) if rt.device.type == "cuda" else None
    train_s = sum(f["trainExamples"] for f in folds) / eps
    return {
        "examplesPerSecond": round(eps, 1),
        "seconds": round(wall, 2),
        "evalSecondsPerFold": round(max(0.0, wall - train_s) / len(folds), 2),
        "peakGpuBytes": peak,
        "foldsRun": len(folds),
    }


def plan_rate(gpu: str = "H100") -> float | None:
    """examplesPerSecondPerGpu of ``gpu`` in lib/cost/throughput.ts (None where the file is not shipped)."""
    try:
        text = THROUGHPUT_TS.read_text()
    except OSError:
        return None
    found = re.search(rf"\b{gpu}: {{ examplesPerSecondPerGpu: ([\d_]+)", text)
    return float(found.group(1).replace("_", "")) if found else None


def _gb(n: float | None) -> str:
    return "n/a (not CUDA)" if n is None else f"{n / 1e9:,.2f} GB"


def run(a: argparse.Namespace) -> dict[str, Any]:
    from .bench import dataloader_seconds

    rt = setup_runtime(a.device, a.precision)
    gpu = rt.device.type == "cuda"
    figures: dict[str, Any] = {"device": rt.gpu_name or rt.device.type, "precision": rt.precision}
    ckpt_minutes = train_properties()["checkpointMinutes"]["maximum"]  # a benchmark never checkpoints

    def config(folds: int, epochs: int) -> TrainConfig:
        return TrainConfig(
            folds=folds,
            epochs=epochs,
            batch_size=a.batch_size,
            hidden_dim=a.hidden_dim,
            checkpoint_minutes=ckpt_minutes,
            final_model=False,  # the figures are the folds' throughput, as before the final model existed
        )

    data = synthetic(a.pairs, a.dim, max(a.folds, a.pairs // 10), max(1, a.pairs // 4))
    print(
        f"gpu bench: {rt.gpu_name or rt.device.type}, {rt.precision}; config-O shape {a.pairs:,} pairs, "
        f"{len(data.query_ids):,} queries, {len(data.doc_ids):,} docs, {a.dim}-d; batch {a.batch_size}, "
        f"hidden {a.hidden_dim}",
        flush=True,
    )
    cfg = config(a.folds, a.epochs)
    available = torch.cuda.mem_get_info(rt.device)[0] if gpu else None
    placement, why = choose_placement(
        "auto", data, rt, a.hidden_dim, a.batch_size, a.folds, "labeled", available, "mem_get_info"
    )
    print(f"placement: {placement} ({why})", flush=True)

    # 1 + 2: the DataLoader loop, half before and half after the trainer (a machine whose load changes
    # during the run favours neither side), and the full config-O-shaped cross-validation.
    before = dataloader_seconds(data, cfg, rt, max(1, a.loader_steps // 2), 0)
    full = _train(data, cfg, rt, placement)
    after = dataloader_seconds(data, cfg, rt, max(1, a.loader_steps - a.loader_steps // 2), 0)
    examples = before[0] + after[0]
    loop = examples / (before[1] + after[1])
    loading = examples / (before[2] + after[2])
    passes = a.pairs * a.folds * a.epochs * (a.folds - 1) / a.folds
    figures.update(
        trainerExamplesPerSecond=full["examplesPerSecond"],
        dataloaderExamplesPerSecond=round(loop, 1),
        dataloaderLoadingExamplesPerSecond=round(loading, 1),
        ratio=round(full["examplesPerSecond"] / loop, 2),
        configO={**full, "pairs": a.pairs, "folds": a.folds, "epochs": a.epochs, "examplePasses": passes},
    )
    print(f"trainer: {full['examplesPerSecond']:,.0f} examples/s ({placement} placement)", flush=True)
    print(
        f"dataloader loop: {loop:,.0f} examples/s (per-example Dataset + DataLoader, same device; its "
        f"loading alone {loading:,.0f}/s)",
        flush=True,
    )
    print(f"ratio: {figures['ratio']:.1f}x (target >= 20x on a GPU)", flush=True)
    print(f"peak GPU memory: {_gb(full['peakGpuBytes'])} (config-O-shaped run)", flush=True)
    print(
        f"config-O-shaped run: {a.folds} folds x {a.epochs} epochs, evaluation included: "
        f"{full['seconds']:.1f} s ({full['evalSecondsPerFold']:.2f} s evaluation per fold; target < 60 s on "
        "an H100/H200)",
        flush=True,
    )
    h100 = plan_rate("H100")
    if h100:
        plan_s = passes / h100
        figures["plan"] = {"h100ExamplesPerSecond": h100, "configOSeconds": round(plan_s, 2)}
        print(
            f"plan estimate (lib/cost/throughput.ts, H100 {h100:,.0f} examples/s): {plan_s:.1f} s of "
            f"training for this run; measured {full['seconds']:.1f} s: plan/measured "
            f"{plan_s / full['seconds']:.2f} "
            "(target 0.75-1.25 on an H100-class GPU)",
            flush=True,
        )

    # 3: the host placement, and CUDA graphs, on 2 folds x 1 epoch of the same data.
    short = config(max(2, min(a.folds, 2)), 1)
    host = _train(data, short, rt, "host")
    figures["hostPlacementExamplesPerSecond"] = host["examplesPerSecond"]
    print(f"host placement: {host['examplesPerSecond']:,.0f} examples/s (batches copied from host)")
    if gpu:
        graphs_rt = setup_runtime(a.device, a.precision, "reduce-overhead")
        try:
            graphs = _train(data, short, graphs_rt, placement)
            figures["cudaGraphsExamplesPerSecond"] = graphs["examplesPerSecond"]
            print(f"cuda graphs (--compile reduce-overhead): {graphs['examplesPerSecond']:,.0f} examples/s")
        except Exception as err:  # noqa: BLE001 - a figure that failed is reported, the others still print
            figures["cudaGraphsError"] = f"{type(err).__name__}: {err}"[:300]
            print(f"cuda graphs (--compile reduce-overhead): failed: {figures['cudaGraphsError']}")
    else:
        print("cuda graphs (--compile reduce-overhead): n/a (not CUDA: torch.compile is off there)")
    del data

    # 4: the worst case.
    figures["worstCase"] = worst_case(a, rt, config)
    return figures


def worst_case(a: argparse.Namespace, rt: Runtime, config) -> dict[str, Any]:
    n, dim = a.worst_pairs, a.dim
    fp32 = 2 * n * dim * 4
    out: dict[str, Any] = {"pairs": n, "featureBytesFp32": fp32}
    itemsize = torch.empty((), dtype=rt.feature_dtype).itemsize
    per_gpu_tables = 2 * n * dim * 2  # bf16 on an A100
    out["fitsA100_40GB"] = per_gpu_tables + 2 * 8 * n < 0.85 * A100_40GB
    host_free = _host_available()
    if host_free is not None and 2.5 * fp32 > host_free:
        out["measured"] = None
        print(
            f"worst case {n:,} pairs: not measured: {_gb(fp32)} of fp32 features need ~{_gb(2.5 * fp32)} "
            f"host memory, {_gb(host_free)} available",
            flush=True,
        )
        return out
    data = synthetic(n, dim, n, n)
    cfg = config(10, 1)
    available = torch.cuda.mem_get_info(rt.device)[0] if rt.device.type == "cuda" else None
    placement, why = choose_placement(
        "auto", data, rt, a.hidden_dim, a.batch_size, 10, "labeled", available, "mem_get_info"
    )
    measured = _train(data, cfg, rt, placement, folds_run=2)
    # 2 folds x 1 epoch ran: the projection scales training to 10 folds x 3 epochs, evaluation to 10 folds.
    passes = n * 10 * 3 * 0.9
    one_gpu = passes / measured["examplesPerSecond"] + 10 * measured["evalSecondsPerFold"]
    node_eff = 0.8  # lib/cost/throughput.ts multiGpuEfficiency for NVLink parts (an assumption)
    node_rate = measured["examplesPerSecond"] * NODE_GPUS * node_eff
    node = passes / node_rate + 10 * measured["evalSecondsPerFold"]
    out.update(
        measured=measured,
        placement=placement,
        deviceBytes=device_bytes(data, rt, 10, "labeled"),
        projectedSecondsOneGpu=round(one_gpu, 1),
        projectedSecondsNode=round(node, 1),
    )
    print(
        f"worst case {n:,} pairs ({_gb(fp32)} fp32 features, every query and doc distinct): {placement} "
        f"placement ({why}); 2 of 10 folds x 1 epoch measured: {measured['examplesPerSecond']:,.0f} "
        "examples/s, "
        f"{measured['seconds']:.1f} s, peak GPU memory {_gb(measured['peakGpuBytes'])}; projected 10 folds x "
        f"3 epochs: {one_gpu / 60:.1f} min on this GPU, {node / 60:.1f} min on {NODE_GPUS} GPUs at "
        f"{node_eff:.0%} efficiency; features in bf16 {'fit' if out['fitsA100_40GB'] else 'do not fit'} "
        f"one A100-40GB ({_gb(per_gpu_tables)} per GPU; {itemsize}-byte features here)",
        flush=True,
    )
    return out


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            line = next(x for x in fh if x.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m two_tower.bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: runs on a CPU in seconds (for tests)")
    p.add_argument("--pairs", type=int, help="config-O pairs (default 876000)")
    p.add_argument("--worst-pairs", type=int, help="worst-case pairs, all distinct (default 16000000)")
    p.add_argument("--dim", type=int, help="embedding width (default 384)")
    p.add_argument("--hidden-dim", type=int, help="tower width (default 512)")
    p.add_argument("--batch-size", type=int, help="micro-batch (default 1024)")
    p.add_argument("--folds", type=int, help="config-O folds (default 10)")
    p.add_argument("--epochs", type=int, help="config-O epochs (default 3)")
    p.add_argument("--loader-steps", type=int, help="timed DataLoader steps (default 50)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    a = p.parse_args(argv)
    sizes = (
        {"pairs": 2000, "worst_pairs": 2000, "dim": 8, "hidden_dim": 8, "batch_size": 64, "folds": 2}
        | {"epochs": 1, "loader_steps": 2}
        if a.quick
        else {"pairs": 876_000, "worst_pairs": 16_000_000, "dim": 384, "hidden_dim": 512, "batch_size": 1024}
        | {"folds": 10, "epochs": 3, "loader_steps": 50}
    )
    for key, value in sizes.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.folds < 2 or math.ceil(a.pairs / 10) < a.folds:
        p.error("--folds must be at least 2 and at most pairs/10")
    figures = run(a)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
