"""A tiny sentence-transformers model built offline: a 2-layer BERT with a word-level vocabulary taken from
the given texts, mean-pooled, saved as a sentence-transformers directory (modules.json, 1_Pooling/, the
transformer's config, weights and tokenizer at the top).

    python -m two_tower.tiny_encoder --out DIR --texts FILE [FILE...] [--dim 32] [--seed 0]

FILE is a queries.csv/docs.csv (its ``text`` column) or a plain text file (one text a line). Nothing comes
from a hub: the tests and the walk-through need a real sentence-transformers directory without the internet.
The weights are random (seeded): the vectors mean nothing, but they go through the same code path as
all-MiniLM-L6-v2's would.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD = re.compile(r"\w+|[^\w\s]")
"""BERT's basic tokenizer splits on whitespace and punctuation: the vocabulary holds the same pieces."""


def read_texts(path: Path) -> list[str]:
    """The texts of a file: the ``text`` column of a CSV with one, else every non-empty line."""
    with path.open(newline="", encoding="utf-8") as fh:
        first = fh.readline()
        fh.seek(0)
        if "text" in next(csv.reader([first]), []):
            return [row["text"] for row in csv.DictReader(fh) if row.get("text")]
        return [line.strip() for line in fh if line.strip()]


def vocabulary(texts: Iterable[str]) -> list[str]:
    """Special tokens, then every lower-cased word and punctuation mark of the texts, sorted."""
    return SPECIAL_TOKENS + sorted({w for t in texts for w in _WORD.findall(t.lower())})


def build(out: Path, texts: Iterable[str], dim: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write the tiny model to ``out`` (made or replaced) and return it."""
    import shutil
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(out)
    vocab = vocabulary(texts)
    with tempfile.TemporaryDirectory() as tmp:
        bert_dir = Path(tmp) / "bert"
        bert_dir.mkdir()
        (bert_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast(vocab_file=str(bert_dir / "vocab.txt"), do_lower_case=True)
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=dim,
            num_hidden_layers=layers,
            # BERT's proportions (64-wide heads at most, a 4x feed-forward): dim 384 with 6 layers is
            # all-MiniLM-L6-v2's shape, so a bench of it estimates that model's speed.
            num_attention_heads=max(2, dim // 32),
            intermediate_size=4 * dim,
            max_position_embeddings=128,
        )
        BertModel(config).save_pretrained(bert_dir)
        tokenizer.save_pretrained(bert_dir)
        transformer = Transformer(str(bert_dir), max_seq_length=64)
        pooling = Pooling(dim, "mean")
        model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        model.save(str(staging))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m two_tower.tiny_encoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="directory to write the model to (replaced)")
    p.add_argument(
        "--texts", required=True, nargs="+", type=Path, help="CSV files with a text column, or plain text"
    )
    p.add_argument("--dim", type=int, default=32, help="embedding width (default 32)")
    p.add_argument("--layers", type=int, default=2, help="transformer layers (default 2)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    a = p.parse_args(argv)
    texts: list[str] = []
    for path in a.texts:
        if not path.is_file():
            print(
                f"{path}: the texts file does not exist. Fix: pass --texts an existing file.",
                file=sys.stderr,
            )
            return 2
        texts += read_texts(path)
    build(a.out, texts, a.dim, a.layers, a.seed)
    print(f"tiny encoder ({len(vocabulary(texts))} tokens, {a.dim}-d) written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
