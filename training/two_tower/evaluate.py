"""nDCG@10 of one fold's test queries under a trained model, the way trec_eval computes it.

Candidates per test query: its judged documents (``labeled``), or the whole corpus (``corpus``: the top
k + CORPUS_TOPK_MARGIN documents by score, judged ones gaining their relevance, the others 0).
"""

from __future__ import annotations

import numpy as np
import torch

from .cv import split_rows
from .data import Dataset
from .metrics import ndcg_at_k
from .model import TwoTower
from .runtime import Runtime

NDCG_K = 10
CORPUS_TOPK_MARGIN = 32
"""--eval-candidates corpus keeps the top k + this many documents per query before trec_eval's tie break."""
ENCODE_ROWS = 8192  # rows encoded at once: bounds activation memory for large corpora
SCORE_ROWS = 65536  # (query, document) pairs scored at once
TOPK_QUERIES = 256  # queries ranked against the whole corpus at once


class FoldEvaluator:
    """Ranks a fold's test queries with the model and scores the ranking with ``metrics.ndcg_at_k``."""

    def __init__(
        self,
        data: Dataset,
        query_features: torch.Tensor,
        doc_features: torch.Tensor,
        pair_fold: np.ndarray,
        rt: Runtime,
        candidates: str,
    ):
        self.data, self.qf, self.df, self.pair_fold, self.rt = (
            data,
            query_features,
            doc_features,
            pair_fold,
            rt,
        )
        self.candidates = candidates
        # trec_eval breaks score ties by document id, descending: each document's rank in id order.
        self.doc_order = np.argsort(
            np.argsort(np.array(data.doc_ids, dtype=object), kind="stable"), kind="stable"
        )

    def _encode(self, encode, features: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        chunks = np.array_split(rows, max(1, len(rows) // ENCODE_ROWS + 1))
        return torch.cat([encode(features[torch.from_numpy(c).to(self.rt.device)]).float() for c in chunks])

    @torch.no_grad()
    def evaluate(self, model: TwoTower, fold: int) -> tuple[float, int]:
        """Mean nDCG@10 over the fold's test queries, and how many there are."""
        data, rt = self.data, self.rt
        model.eval()
        _, test = split_rows(self.pair_fold, data.weak, fold)
        keys = data.pair_query[test] * len(data.doc_ids) + data.pair_doc[test]
        _, first = np.unique(keys, return_index=True)  # a judged pair listed twice counts once
        test = test[np.sort(first)]
        queries, q_local = np.unique(data.pair_query[test], return_inverse=True)
        with rt.autocast():
            qv = self._encode(model.encode_queries, self.qf, queries)
            if self.candidates == "labeled":
                docs, d_local = np.unique(data.pair_doc[test], return_inverse=True)
                dv = self._encode(model.encode_docs, self.df, docs)
                qi, di = torch.from_numpy(q_local).to(rt.device), torch.from_numpy(d_local).to(rt.device)
                scores = torch.cat(  # row-wise dot products, in chunks to bound memory
                    [
                        (qv[a] * dv[b]).sum(-1)
                        for a, b in zip(qi.split(SCORE_ROWS), di.split(SCORE_ROWS), strict=True)
                    ]
                )
                run_q, run_doc, run_score = q_local, docs[d_local], scores.cpu().numpy()
                run_gain = data.relevance[test]
            else:
                all_docs = np.arange(len(data.doc_ids))
                dv = self._encode(model.encode_docs, self.df, all_docs)
                top = min(len(all_docs), NDCG_K + CORPUS_TOPK_MARGIN)
                vals, idx = [], []
                for chunk in torch.split(qv, TOPK_QUERIES):
                    v, i = torch.topk(chunk @ dv.T, top, dim=1)
                    vals.append(v.cpu().numpy())
                    idx.append(i.cpu().numpy())
                run_score, run_doc = np.concatenate(vals).ravel(), np.concatenate(idx).ravel()
                run_q = np.repeat(np.arange(len(queries)), top)
                judged = dict(
                    zip(
                        (q_local * len(data.doc_ids) + data.pair_doc[test]).tolist(),
                        data.relevance[test].tolist(),
                        strict=True,
                    )
                )
                run_gain = np.array(
                    [judged.get(k, 0) for k in (run_q * len(data.doc_ids) + run_doc).tolist()]
                )
        model.train()
        per_query = ndcg_at_k(
            run_q,
            self.doc_order[run_doc],
            run_score.astype(np.float64),
            run_gain,
            q_local,
            data.relevance[test],
            len(queries),
            NDCG_K,
        )
        return float(per_query.mean()), len(queries)
