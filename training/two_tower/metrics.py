"""nDCG@k exactly as ``trec_eval -m ndcg_cut.k`` computes it; the trainer's evaluation uses the same code.

trec_eval rules followed here:
- the run's rank column is ignored: each query's documents are re-sorted by score descending, ties broken
  by document id descending (``strcmp(ptr2->docno, ptr1->docno)`` in ``comp_sim_docno``,
  trec_eval ``form_res_rels.c``);
- gain is the judged relevance (linear; unjudged and relevance <= 0 give 0), discount 1/log2(rank + 1);
- the ideal DCG is built from all judged documents of the query, retrieved or not;
- a query whose judgements hold no relevant document scores 0;
- the mean is over the queries present in both the qrels and the run.

CLI: ``python -m two_tower.metrics QRELS RUN [--k 10]`` prints one line per query and the mean, in
``trec_eval -q`` layout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def ndcg_at_k(
    run_query: np.ndarray,
    run_doc_order: np.ndarray,
    run_score: np.ndarray,
    run_gain: np.ndarray,
    judged_query: np.ndarray,
    judged_gain: np.ndarray,
    num_queries: int,
    k: int = 10,
) -> np.ndarray:
    """nDCG@k per query, vectorised over all queries.

    run_*: one entry per retrieved (query, document): query index in [0, num_queries), the document id's
    position in ascending string order of all ids (for trec_eval's tie break), its score, and its judged
    relevance for that query (0 when unjudged). judged_*: one entry per judged (query, document): query
    index and relevance. Returns float64 [num_queries]; queries with no relevant judgement score 0.
    """
    run_query = np.asarray(run_query, dtype=np.int64)
    # Sort by query, then score descending, then doc id descending (np.lexsort: last key is primary).
    order = np.lexsort(
        (-np.asarray(run_doc_order, dtype=np.int64), -np.asarray(run_score, dtype=np.float64), run_query)
    )
    q_sorted = run_query[order]
    gain = np.clip(np.asarray(run_gain, dtype=np.float64)[order], 0, None)
    rank = _rank_within_group(q_sorted)
    keep = rank < k
    dcg = np.bincount(q_sorted[keep], weights=gain[keep] / np.log2(rank[keep] + 2.0), minlength=num_queries)

    judged_query = np.asarray(judged_query, dtype=np.int64)
    j_gain = np.clip(np.asarray(judged_gain, dtype=np.float64), 0, None)
    j_order = np.lexsort((-j_gain, judged_query))
    jq, jg = judged_query[j_order], j_gain[j_order]
    j_rank = _rank_within_group(jq)
    j_keep = j_rank < k
    idcg = np.bincount(jq[j_keep], weights=jg[j_keep] / np.log2(j_rank[j_keep] + 2.0), minlength=num_queries)
    out = np.zeros(num_queries, dtype=np.float64)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return out


def _rank_within_group(sorted_groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal values (input sorted by group)."""
    n = len(sorted_groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def ndcg_from_dicts(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], k: int = 10
) -> dict[str, float]:
    """nDCG@k per query for the queries in both ``run`` {qid: {docno: score}} and ``qrels``
    {qid: {docno: rel}}."""
    queries = sorted(q for q in run if q in qrels)
    qindex = {q: i for i, q in enumerate(queries)}
    docs = sorted({d for q in queries for d in run[q]})
    dindex = {d: i for i, d in enumerate(docs)}
    rq, rd, rs, rg = [], [], [], []
    for q in queries:
        for d, s in run[q].items():
            rq.append(qindex[q])
            rd.append(dindex[d])
            rs.append(s)
            rg.append(qrels[q].get(d, 0))
    jq = [qindex[q] for q in queries for _ in qrels[q]]
    jg = [g for q in queries for g in qrels[q].values()]
    values = ndcg_at_k(
        np.array(rq), np.array(rd), np.array(rs), np.array(rg), np.array(jq), np.array(jg), len(queries), k
    )
    return dict(zip(queries, values.tolist(), strict=True))


def read_qrels(lines: Iterable[str], source: str = "qrels") -> dict[str, dict[str, int]]:
    """TREC qrels: ``qid iter docno rel`` per line."""
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise ValueError(f"{source} line {n}: expected 'qid iter docno rel', got {line.strip()!r}")
        qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


def read_run(lines: Iterable[str], source: str = "run") -> dict[str, dict[str, float]]:
    """TREC run: ``qid Q0 docno rank score tag`` per line (the rank column is ignored, as trec_eval does)."""
    run: dict[str, dict[str, float]] = {}
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise ValueError(
                f"{source} line {n}: expected 'qid Q0 docno rank score tag', got {line.strip()!r}"
            )
        run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m two_tower.metrics",
        description="Per-query and mean nDCG@k, as trec_eval -q -m ndcg_cut.k prints it.",
    )
    parser.add_argument("qrels", type=Path, help="TREC qrels file: qid iter docno relevance")
    parser.add_argument("run", type=Path, help="TREC run file: qid Q0 docno rank score tag")
    parser.add_argument("--k", type=int, default=10, help="rank cutoff (default 10)")
    args = parser.parse_args(argv)
    try:
        qrels = read_qrels(args.qrels.read_text().splitlines(), str(args.qrels))
        run = read_run(args.run.read_text().splitlines(), str(args.run))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    per_query = ndcg_from_dicts(run, qrels, args.k)
    name = f"ndcg_cut_{args.k}"
    for qid in sorted(per_query):
        print(f"{name:<22}\t{qid}\t{per_query[qid]:.4f}")
    mean = float(np.mean(list(per_query.values()))) if per_query else 0.0
    print(f"{name:<22}\tall\t{mean:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
