"""``python -m two_tower.synth --out DIR``: a synthetic dataset with a planted structure.

Each document has a latent vector z (``--latent`` dims); its embedding is ``z @ A`` plus noise. Each query
copies the latent of a target document (plus ``--query-noise``) and is embedded with a *different* random
matrix ``B``. The raw cosine between a query and a document embedding therefore carries no signal (an
untrained model scores like random), while a model that learns A and B recovers the latent match.

Labels per query: the target document relevance 2, the ``--positives`` - 1 latent nearest other documents
relevance 1, and random documents relevance 0 up to ``--candidates`` judged documents. ``--weak`` adds that
many weak rows per query (a near document, relevance 1, weak = 1). With ``--text``, queries.csv/docs.csv
replace the embeddings: documents are bags of words ``d<i>``, queries use the words ``q<pi(i)>`` of their
target's words under a hidden permutation pi, so no word is shared and the mapping must be learned.

``--table FILE`` (implies ``--text``) also writes the whole dataset as one flat table, the shape users bring:
``query,document,label,weak_score``, one row per pair, texts inline; a weak row's score is a float in
[0.3, 1.0) (a labeller's confidence), empty on a judged row. ``spot-sweep data import FILE --query query --doc
document --label label --weak-score weak_score`` turns it back into the trainer's text layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def generate(
    out: Path,
    *,
    queries: int = 2000,
    docs: int = 4000,
    dim: int = 64,
    latent: int = 16,
    noise: float = 0.1,
    query_noise: float = 0.3,
    candidates: int = 20,
    positives: int = 3,
    weak: int = 0,
    text: bool = False,
    vocab: int = 500,
    words: int = 8,
    fmt: str = "csv",
    seed: int = 0,
    table: Path | None = None,
) -> Path:
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    z_doc = rng.standard_normal((docs, latent)).astype(np.float32)
    target = rng.integers(0, docs, size=queries)
    z_query = z_doc[target] + query_noise * rng.standard_normal((queries, latent)).astype(np.float32)
    zd = z_doc / np.linalg.norm(z_doc, axis=1, keepdims=True)
    q_ids = [f"q{i}" for i in range(queries)]
    d_ids = [f"d{i}" for i in range(docs)]

    rows: list[tuple[str, str, int, int]] = []
    chunk = 1024
    for start in range(0, queries, chunk):
        zq = z_query[start : start + chunk]
        sims = (zq / np.linalg.norm(zq, axis=1, keepdims=True)) @ zd.T
        near = np.argsort(-sims, axis=1)[:, : positives + weak + 1]
        for j in range(len(zq)):
            qi, t = start + j, int(target[start + j])
            chosen = {t: 2}
            for d in near[j]:
                if len(chosen) >= positives:
                    break
                chosen.setdefault(int(d), 1)
            weak_docs = [int(d) for d in near[j] if int(d) not in chosen][:weak]
            while len(chosen) < max(candidates, positives):
                chosen.setdefault(int(rng.integers(0, docs)), 0)
            rows += [(q_ids[qi], d_ids[d], rel, 0) for d, rel in chosen.items()]
            rows += [(q_ids[qi], d_ids[d], 1, 1) for d in weak_docs]
    pairs = pd.DataFrame(rows, columns=["query_id", "doc_id", "relevance", "weak"])
    if fmt == "parquet":
        pairs.to_parquet(out / "pairs.parquet", index=False)
    else:
        pairs.to_csv(out / "pairs.csv", index=False)

    if text:
        perm = rng.permutation(vocab)
        doc_words = rng.integers(0, vocab, size=(docs, words))
        doc_text = [" ".join(f"d{w}" for w in ws) for ws in doc_words]
        keep = max(1, words // 2)
        query_text = []
        for qi in range(queries):
            ws = rng.permutation(doc_words[target[qi]])[:keep]
            query_text.append(" ".join(f"q{perm[w]}" for w in ws))
        pd.DataFrame({"query_id": q_ids, "text": query_text}).to_csv(out / "queries.csv", index=False)
        pd.DataFrame({"doc_id": d_ids, "text": doc_text}).to_csv(out / "docs.csv", index=False)
        if table is not None:
            q_texts = dict(zip(q_ids, query_text, strict=True))
            write_table(Path(table), pairs, q_texts, dict(zip(d_ids, doc_text, strict=True)), rng)
    else:
        a = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
        b = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
        d_emb = z_doc @ a + noise * rng.standard_normal((docs, dim)).astype(np.float32)
        q_emb = z_query @ b + noise * rng.standard_normal((queries, dim)).astype(np.float32)
        np.save(out / "query_embeddings.npy", q_emb.astype(np.float32))
        np.save(out / "doc_embeddings.npy", d_emb.astype(np.float32))
        (out / "query_ids.txt").write_text("\n".join(q_ids) + "\n")
        (out / "doc_ids.txt").write_text("\n".join(d_ids) + "\n")
    return out


def write_table(path: Path, pairs: pd.DataFrame, queries: dict, docs: dict, rng: np.random.Generator) -> None:
    """The flat table (see the module docstring): texts inline, weak rows scored with a float confidence."""
    weak = pairs["weak"].to_numpy() == 1
    scores = np.where(weak, np.round(rng.uniform(0.3, 1.0, size=len(pairs)), 3), np.nan)
    flat = pd.DataFrame(
        {
            "query": pairs["query_id"].map(queries),
            "document": pairs["doc_id"].map(docs),
            "label": pairs["relevance"],
            "weak_score": scores,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    flat.to_csv(path, index=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m two_tower.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory to write the dataset into")
    p.add_argument("--queries", type=int, default=2000, help="number of queries (default 2000)")
    p.add_argument("--docs", type=int, default=4000, help="number of documents (default 4000)")
    p.add_argument("--dim", type=int, default=64, help="embedding width (default 64; config O uses 384)")
    p.add_argument("--latent", type=int, default=16, help="width of the planted latent space (default 16)")
    p.add_argument("--noise", type=float, default=0.1, help="embedding noise std (default 0.1)")
    p.add_argument("--query-noise", type=float, default=0.3, help="query latent noise std (default 0.3)")
    p.add_argument("--candidates", type=int, default=20, help="judged documents per query (default 20)")
    p.add_argument("--positives", type=int, default=3, help="relevant documents per query, >= 1 (default 3)")
    p.add_argument("--weak", type=int, default=0, help="extra weak rows per query (default 0)")
    p.add_argument(
        "--text", action="store_true", help="write queries.csv/docs.csv texts instead of embeddings"
    )
    p.add_argument("--vocab", type=int, default=500, help="--text: words in the vocabulary (default 500)")
    p.add_argument("--words", type=int, default=8, help="--text: words per document (default 8)")
    p.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="pairs file format (default csv)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--table",
        type=Path,
        help="also write the dataset as one flat CSV (query,document,label,weak_score); implies --text",
    )
    a = p.parse_args(argv)
    out = generate(
        a.out,
        queries=a.queries,
        docs=a.docs,
        dim=a.dim,
        latent=a.latent,
        noise=a.noise,
        query_noise=a.query_noise,
        candidates=a.candidates,
        positives=a.positives,
        weak=a.weak,
        text=a.text or a.table is not None,
        vocab=a.vocab,
        words=a.words,
        fmt=a.format,
        seed=a.seed,
        table=a.table,
    )
    print(f"synthetic dataset written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
