"""``python -m two_tower.bench memory``: where a run's host memory goes, against the raw feature bytes.

Writes an embeddings dataset of the requested sizes to disk (every pair a training example; queries =
pairs/10, documents = pairs/4, as the seed's measurement), then measures each phase in a fresh subprocess,
so one phase's peak does not hide in another's: ``baseline`` (python + torch imported, nothing loaded),
``load`` (``data.load_dataset``) and ``train`` (``python -m two_tower.train``, 2 folds x 1 epoch). Each
phase reports its peak RSS (``VmHWM``: what the OOM killer counts, mmap'd file pages included) and the
peak of its anonymous memory (``RssAnon`` sampled every 20 ms: the part that cannot be
dropped from the page cache), and on CUDA the peak GPU memory allocated.

The training phase uses a narrow tower (``--hidden-dim``, default 16) by default: the model is a fixed cost,
the data is what grows, and a narrow tower keeps a 4M-pair run on a CPU to minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PHASES = ("baseline", "load", "train")


def write_dataset(out: Path, pairs: int, dim: int, fmt: str, seed: int = 0) -> int:
    """An embeddings dataset in ``out``; returns the raw feature bytes (fp32 queries + documents)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    queries, docs = max(10, pairs // 10), max(1, pairs // 4)
    out.mkdir(parents=True, exist_ok=True)
    for side, rows in (("query", queries), ("doc", docs)):
        emb = np.lib.format.open_memmap(out / f"{side}_embeddings.npy", "w+", np.float32, (rows, dim))
        for start in range(0, rows, 1 << 16):  # in blocks: the writer's memory stays small
            stop = min(rows, start + (1 << 16))
            emb[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        emb.flush()
        del emb
        prefix = "q" if side == "query" else "d"
        (out / f"{side}_ids.txt").write_text("".join(f"{prefix}{i:09d}\n" for i in range(rows)))
    frame = pd.DataFrame(
        {
            "query_id": pd.Series(rng.integers(0, queries, pairs)).map("q{:09d}".format),
            "doc_id": pd.Series(rng.integers(0, docs, pairs)).map("d{:09d}".format),
            "relevance": rng.integers(1, 4, pairs),
        }
    )
    if fmt == "csv":
        frame.to_csv(out / "pairs.csv", index=False)
    else:
        frame.to_parquet(out / "pairs.parquet", index=False)
    return (queries + docs) * dim * 4


class AnonSampler:
    """Peak RssAnon of this process, sampled on a thread (Linux /proc; 0 elsewhere)."""

    def __init__(self, every: float = 0.02):
        self.peak, self.every = 0, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._read())
            self._done.wait(self.every)

    def __enter__(self) -> AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())


def peak_rss_bytes() -> int:
    """VmHWM on Linux: the peak of this process's own memory map. Not ru_maxrss there: Linux carries it
    across fork + exec, so a phase would report the parent's peak (the dataset writer's) when larger."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_phase(phase: str, data_dir: Path, hidden_dim: int, device: str) -> dict[str, float]:
    """One phase in this process; the figures as a dict (printed as JSON by ``--phase``)."""
    with AnonSampler() as anon:
        import torch

        from .data import load_dataset

        start = time.perf_counter()
        if phase == "load":
            data = load_dataset(data_dir)
            assert data.num_pairs > 0
        elif phase == "train":
            from .train import main as train_main

            with tempfile.TemporaryDirectory() as tmp:
                code = train_main(
                    [
                        "--data",
                        str(data_dir),
                        "--out",
                        tmp,
                        "--folds",
                        "2",
                        "--epochs",
                        "1",
                        "--hidden-dim",
                        str(hidden_dim),
                        "--device",
                        device,
                        "--progress-seconds",
                        "3600",
                    ]
                )
            if code != 0:
                raise SystemExit(f"the training phase exited {code}")
        seconds = time.perf_counter() - start
    figures = {"peakRss": peak_rss_bytes(), "peakAnon": anon.peak, "seconds": seconds}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        figures["peakGpu"] = torch.cuda.max_memory_allocated()
    return figures


def _phase_in_subprocess(phase: str, data_dir: Path, hidden_dim: int, device: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "two_tower.bench_memory", "--phase", phase, str(data_dir)]
    cmd += ["--hidden-dim", str(hidden_dim), "--device", device]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def measure(pairs_list: list[int], dim: int, fmt: str, hidden_dim: int, device: str, keep: Path | None):
    """Print one line per (size, phase); returns the figures per size."""
    report = []
    for pairs in pairs_list:
        with tempfile.TemporaryDirectory(dir=keep) as tmp:
            data_dir = Path(tmp) / f"pairs-{pairs}"
            features = write_dataset(data_dir, pairs, dim, fmt)
            print(
                f"memory: {pairs:,} pairs ({fmt}), {max(10, pairs // 10):,} queries, {max(1, pairs // 4):,} "
                f"docs, {dim}-d: {_mb(features)} of fp32 features",
                flush=True,
            )
            row: dict[str, object] = {"pairs": pairs, "featureBytes": features}
            for phase in PHASES:
                f = _phase_in_subprocess(phase, data_dir, hidden_dim, device)
                row[phase] = f
                gpu = f" peak GPU {_mb(f['peakGpu'])};" if "peakGpu" in f else ""
                print(
                    f"memory:   {phase:<8} peak RSS {_mb(f['peakRss'])} ({f['peakRss'] / features:.2f}x "
                    f"features), peak anonymous {_mb(f['peakAnon'])} ({f['peakAnon'] / features:.2f}x);"
                    f"{gpu} {f['seconds']:.1f} s",
                    flush=True,
                )
            base = row["baseline"]["peakRss"]  # type: ignore[index]
            for phase in ("load", "train"):
                over = (row[phase]["peakRss"] - base) / features  # type: ignore[index]
                print(f"memory:   {phase} above the baseline: {over:.2f}x features", flush=True)
            report.append(row)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m two_tower.bench memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, nargs="+", default=[1_000_000, 4_000_000], help="sizes (1M 4M)")
    p.add_argument("--dim", type=int, default=384, help="embedding width (default 384)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="pairs file (default csv)")
    p.add_argument("--hidden-dim", type=int, default=16, help="tower width of the training phase (16)")
    p.add_argument("--device", default="cpu", help="device of the training phase (default cpu)")
    p.add_argument("--dir", type=Path, help="where to write the datasets (default: the temp directory)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("data_dir", nargs="?", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.phase:
        print(json.dumps(run_phase(a.phase, a.data_dir, a.hidden_dim, a.device)))
        return 0
    report = measure(a.pairs, a.dim, a.format, a.hidden_dim, a.device, a.dir)
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
