"""``python -m two_tower.bench``: the trainer's speed against a plain per-example DataLoader loop.

Subcommands: ``memory`` (host memory per phase against the feature bytes, bench_memory.py) and ``gpu``
(every figure of issue 14 from one run, bench_gpu.py; ``--quick`` on a CPU).

Builds a dataset shaped like config O (876K pairs, 384-d embeddings; smaller with --pairs/--dim), then
prints, from one run: the trainer's examples/s and peak memory, the same model and loss trained through a
per-example ``Dataset`` + ``DataLoader`` loop (what the users' script most likely does), and the ratio.
On a GPU it also runs the full config-O-shaped cross-validation (``--folds`` 10, ``--epochs`` 3) and prints
its time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from contract import train_properties

from .config import TrainConfig
from .cv import assign_folds
from .data import Dataset
from .interrupt import StopRequest
from .loss import in_batch_softmax_loss
from .model import TwoTower
from .runtime import Runtime, setup_runtime


def make_dataset(pairs: int, dim: int, queries: int, docs: int, seed: int = 0) -> Dataset:
    """Random embeddings and pairs in the requested shape: for timing only, there is nothing to learn."""
    rng = np.random.default_rng(seed)
    q_feat = rng.standard_normal((queries, dim), dtype=np.float32)
    d_feat = rng.standard_normal((docs, dim), dtype=np.float32)
    pair_query = np.sort(rng.integers(0, queries, pairs))
    pair_doc = rng.integers(0, docs, pairs)
    relevance = rng.integers(1, 4, pairs)  # every pair a training example, as config O's 876K
    return Dataset(
        "embeddings",
        [f"q{i}" for i in range(queries)],
        [f"d{i}" for i in range(docs)],
        q_feat,
        d_feat,
        pair_query,
        pair_doc,
        relevance,
        np.zeros(pairs, dtype=bool),
        [],
    )


class PairDataset(TorchDataset):
    """One (query embedding, doc embedding, doc id) per __getitem__, as a typical training script does."""

    def __init__(self, data: Dataset, rows: np.ndarray):
        self.data, self.rows = data, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        r = self.rows[i]
        d = self.data
        return (
            torch.from_numpy(d.query_features[d.pair_query[r]]),
            torch.from_numpy(d.doc_features[d.pair_doc[r]]),
            int(d.pair_doc[r]),
        )


def dataloader_seconds(
    data: Dataset, cfg: TrainConfig, rt: Runtime, steps: int, workers: int
) -> tuple[int, float, float]:
    """Train ``steps`` batches through a per-example DataLoader, then only load ``steps`` more:
    (examples per phase, training seconds, loading-only seconds)."""
    rows = np.flatnonzero(data.relevance > 0)
    torch.manual_seed(cfg.seed)
    model = TwoTower(data.input_dim, cfg.hidden_dim).to(rt.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    scaler = rt.grad_scaler()
    loader = DataLoader(
        PairDataset(data, rows), batch_size=cfg.batch_size, shuffle=True, num_workers=workers, drop_last=True
    )

    def train_step(q: torch.Tensor, d: torch.Tensor, doc: torch.Tensor) -> None:
        q, d, doc = q.to(rt.device), d.to(rt.device), doc.to(rt.device)
        with rt.autocast():
            qv, dv = model(q, d)
        loss = in_batch_softmax_loss(
            qv, dv, torch.arange(len(q), device=rt.device), doc, doc, cfg.temperature
        )
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    steps = max(1, min(steps, (len(loader) - 2) // 2))
    batches = iter(loader)
    for _ in range(2):  # warm-up
        train_step(*next(batches))
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(*next(batches))
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return steps * cfg.batch_size, train_seconds, time.perf_counter() - start


def peak_memory_mib(rt: Runtime) -> tuple[float, str]:
    if rt.device.type == "cuda":
        return torch.cuda.max_memory_allocated(rt.device) / 2**20, "GPU memory allocated"
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, "process peak RSS"


SUBCOMMANDS = {"memory": "bench_memory", "gpu": "bench_gpu", "encode": "bench_encode"}
"""``python -m two_tower.bench memory|gpu|encode ...``: the other benchmarks, one module each."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(f".{SUBCOMMANDS[argv[0]]}", __package__).main(argv[1:])
    from .train import Trainer

    p = argparse.ArgumentParser(prog="python -m two_tower.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pairs", type=int, default=876_000, help="pairs in the dataset (default 876000, config O)"
    )
    p.add_argument("--dim", type=int, default=384, help="embedding width (default 384)")
    p.add_argument("--queries", type=int, help="distinct queries (default pairs/10)")
    p.add_argument("--docs", type=int, help="distinct documents (default pairs/4)")
    p.add_argument("--batch-size", type=int, default=1024, help="micro-batch size (default 1024)")
    p.add_argument("--hidden-dim", type=int, default=512, help="tower hidden width (default 512)")
    p.add_argument("--folds", type=int, help="folds for the trainer run (default: 10 on GPU, 2 elsewhere)")
    p.add_argument("--epochs", type=int, help="epochs for the trainer run (default: 3 on GPU, 1 elsewhere)")
    p.add_argument(
        "--loader-steps", type=int, default=50, help="timed steps of the DataLoader loop (default 50)"
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader num_workers (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default auto")
    p.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto", help="default auto"
    )
    a = p.parse_args(argv)

    rt = setup_runtime(a.device, a.precision)
    gpu = rt.device.type == "cuda"
    folds, epochs = a.folds or (10 if gpu else 2), a.epochs or (3 if gpu else 1)
    queries, docs = a.queries or max(folds, a.pairs // 10), a.docs or max(1, a.pairs // 4)
    data = make_dataset(a.pairs, a.dim, queries, docs)
    print(
        f"dataset: {a.pairs:,} pairs ({int((data.relevance > 0).sum()):,} positive), {queries:,} queries, "
        f"{docs:,} docs, {a.dim}-d embeddings; batch {a.batch_size}, hidden {a.hidden_dim}, {rt.precision}"
    )
    cfg = TrainConfig(
        folds=folds,
        epochs=epochs,
        batch_size=a.batch_size,
        hidden_dim=a.hidden_dim,
        # The longest interval the contract allows: a benchmark never pauses to checkpoint.
        checkpoint_minutes=train_properties()["checkpointMinutes"]["maximum"],
        final_model=False,  # the figures are the folds' throughput, as before the final model existed
    )
    assignment = assign_folds(data.query_ids, folds, cfg.seed)
    # The DataLoader loop is timed half before and half after the trainer, so that a machine whose load
    # changes during the run (a shared CPU) does not favour either side.
    before = dataloader_seconds(data, cfg, rt, max(1, a.loader_steps // 2), a.workers)
    if gpu:
        torch.cuda.reset_peak_memory_stats(rt.device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, data, Path(tmp), rt, StopRequest(), assignment, {}, progress_seconds=30)
        start = time.perf_counter()
        results = trainer.run()
        wall = time.perf_counter() - start
    peak, what = peak_memory_mib(rt)
    fast = results["examplesPerSecond"]
    print(
        f"trainer (resident tensors, index-slice batches): {fast:,.0f} examples/s; "
        f"peak memory {peak:,.0f} MiB ({what}); {folds} folds x {epochs} epochs in {wall:.1f} s"
    )
    after = dataloader_seconds(data, cfg, rt, max(1, a.loader_steps - a.loader_steps // 2), a.workers)
    examples = before[0] + after[0]
    slow, loading = examples / (before[1] + after[1]), examples / (before[2] + after[2])
    print(
        f"per-example Dataset + DataLoader loop (num_workers={a.workers}): {slow:,.0f} examples/s "
        f"(over {examples // a.batch_size} steps); its loading alone: {loading:,.0f} examples/s, "
        "a ceiling on any device"
    )
    print(f"ratio: {fast / slow:.1f}x")
    if gpu:
        print(
            f"config-O-shaped run ({folds} folds x {epochs} epochs, {a.pairs:,} pairs, {rt.gpu_name}): "
            f"{wall / 60:.1f} min"
        )
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
