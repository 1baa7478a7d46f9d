"""nDCG@10 of one fold's test queries under a trained model, the way trec_eval computes it.

Candidates per test query: its judged documents (``labeled``), or the whole corpus (``corpus``: the top
k + CORPUS_TOPK_MARGIN documents by score, judged ones gaining their relevance, the others 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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
SCORE_ROWS = 8192  # (query, document) pairs scored at once: 2 x 8192 gathered vectors, a few MB
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
        # trec_eval breaks score ties by document id, descending: each document's rank in id order (ids are
        # unique; sorted as Python compares str, by code point, without one Python object per id).
        order = np.asarray(pd.Index(data.doc_ids, dtype="str").argsort())
        self.doc_order = np.empty(len(order), dtype=np.int64)
        self.doc_order[order] = np.arange(len(order))

    def _encode(self, encode, features: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        """Vectors of ``rows``, encoded ENCODE_ROWS at a time into one preallocated fp32 tensor (no list of
        chunks concatenated: that held the vectors twice). ``features`` may be on the device or, with
        --feature-placement host, in host memory: each chunk is gathered where the features are and cast to
        the towers' input dtype on the device, as the training step does."""
        out = None
        for start in range(0, len(rows), ENCODE_ROWS):
            chunk = torch.from_numpy(rows[start : start + ENCODE_ROWS]).to(features.device)
            x = features[chunk].to(self.rt.device, dtype=self.rt.input_dtype(features.dtype))
            v = encode(x).float()
            if out is None:
                out = torch.empty((len(rows), v.shape[1]), dtype=torch.float32, device=self.rt.device)
            out[start : start + len(v)] = v
        assert out is not None, "encode called with no rows"
        return out

    def _score_labeled(
        self, model: TwoTower, qv: torch.Tensor, q_local: np.ndarray, docs: np.ndarray, d_local: np.ndarray
    ) -> np.ndarray:
        """Score of each judged (query, document) pair. The documents are encoded ENCODE_ROWS at a time and
        only the pairs of those documents scored, so at most one chunk of document vectors is held, not the
        vectors of every judged document (with millions of documents, more than the features themselves)."""
        by_doc = np.argsort(d_local, kind="stable")
        bounds = np.searchsorted(d_local[by_doc], np.arange(0, len(docs) + ENCODE_ROWS, ENCODE_ROWS))
        scores = np.empty(len(d_local), dtype=np.float32)
        dev = self.rt.device
        for k, start in enumerate(range(0, len(docs), ENCODE_ROWS)):
            dv = self._encode(model.encode_docs, self.df, docs[start : start + ENCODE_ROWS])
            pairs = by_doc[bounds[k] : bounds[k + 1]]
            for at in range(0, len(pairs), SCORE_ROWS):
                p = pairs[at : at + SCORE_ROWS]
                qi = torch.from_numpy(q_local[p]).to(dev)
                di = torch.from_numpy(d_local[p] - start).to(dev)
                scores[p] = (qv[qi] * dv[di]).sum(-1).cpu().numpy()  # row-wise dot products
        return scores

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
                scores = self._score_labeled(model, qv, q_local, docs, d_local)
                run_q, run_doc, run_score = q_local, docs[d_local], scores
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
