"""``python -m two_tower.bench encode``: texts per second of two_tower.encode_texts on this machine.

    python -m two_tower.bench encode [--texts 4000] [--words 12] [--batch-size 256] [--dim 32] [--layers 2]
        [--model DIR]
        [--device auto]

Without ``--model`` it builds the tiny offline encoder (two_tower.tiny_encoder: 2 layers, ``--dim`` wide) over
synthetic texts of ``--words`` words; with ``--model`` it times that sentence-transformers directory instead
(for example all-MiniLM-L6-v2 saved locally). Half the texts are queries, half documents, as encode_texts
reads them; the time is the encoding alone (the model's load is printed apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import encode_texts, tiny_encoder

VOCAB = 500


def write_texts(out: Path, texts: int, words: int, seed: int = 0) -> None:
    """A text dataset of ``texts`` texts (half queries, half documents) and one pair per query."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(VOCAB)]
    out.mkdir(parents=True, exist_ok=True)
    half = max(1, texts // 2)
    for name, column, prefix in (("queries.csv", "query_id", "q"), ("docs.csv", "doc_id", "d")):
        rows = [f"{column},text"] + [f"{prefix}{i},{' '.join(rng.choice(vocab, words))}" for i in range(half)]
        (out / name).write_text("\n".join(rows) + "\n")
    (out / "pairs.csv").write_text(
        "query_id,doc_id,relevance\n" + "".join(f"q{i},d{i},1\n" for i in range(half))
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m two_tower.bench encode", description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=int, default=4000, help="texts to encode (default 4000)")
    p.add_argument("--words", type=int, default=12, help="words per text (default 12)")
    p.add_argument("--batch-size", type=int, default=256, help="encode batch size (default 256)")
    p.add_argument("--dim", type=int, default=32, help="the tiny model's width (default 32)")
    p.add_argument(
        "--layers",
        type=int,
        default=2,
        help="the tiny model's layers (default 2; 6 at --dim 384: MiniLM-L6's shape)",
    )
    p.add_argument(
        "--model", type=Path, help="a sentence-transformers directory to time instead of the tiny one"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default auto")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_texts(data, a.texts, a.words)
        model = a.model
        if model is None:
            texts = tiny_encoder.read_texts(data / "queries.csv") + tiny_encoder.read_texts(data / "docs.csv")
            model = tiny_encoder.build(Path(tmp) / "model", texts, a.dim, a.layers)
        start = time.perf_counter()
        stats = encode_texts.encode(data, str(model), Path(tmp) / "out", a.batch_size, a.device)
        total = time.perf_counter() - start
    what = f"the tiny encoder ({a.dim}-d, {a.layers} layers)" if a.model is None else str(a.model)
    print(
        f"encode: {stats['texts']:,} texts of {a.words} words with {what}, batch {a.batch_size}: "
        f"{stats['textsPerSecond']:,.0f} texts/s ({stats['seconds']:.2f} s encoding; "
        f"{total - stats['seconds']:.2f} s loading the model and writing)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
