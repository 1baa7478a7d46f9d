"""Cross-validation folds grouped by query id, deterministic from the seed.

Only queries with at least one non-weak pair are assigned to a fold (they are the ones evaluated); a query
known only from weak pairs is in the training part of every fold. For fold f, training uses every row
(weak or not) of queries outside fold f; testing uses the non-weak rows of the queries in fold f.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import UserError


def assign_folds(eval_query_ids: list[str], folds: int, seed: int) -> dict[str, int]:
    """query id -> fold in [0, folds): ids sorted, shuffled with the seed, dealt round-robin."""
    if len(eval_query_ids) < folds:
        raise UserError(
            f"only {len(eval_query_ids)} queries have non-weak pairs, fewer than the {folds} folds asked "
            "for.",
            where="column query_id / setting folds",
            fix=f"use at most {len(eval_query_ids)} folds (`folds` in the sweep spec, or --folds), "
            "or add queries with judged pairs.",
        )
    ordered = sorted(set(eval_query_ids))
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i]: int(pos % folds) for pos, i in enumerate(perm)}


def query_folds(query_ids: Sequence[str] | pd.Index, assignment: dict[str, int]) -> np.ndarray:
    """Fold of each query row (-1: training in every fold)."""
    # Vectorised (a dataset may have millions of queries): position of each id among the assigned ones.
    assigned = pd.Index(list(assignment), dtype="str")
    folds = np.fromiter(assignment.values(), dtype=np.int64, count=len(assignment))
    at = assigned.get_indexer(pd.Index(query_ids, dtype="str"))
    return np.append(folds, -1)[at]  # at -1 (not assigned): the appended -1


def split_rows(pair_fold: np.ndarray, weak: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(training row indices, test row indices) of the pairs for one fold."""
    train = np.flatnonzero(pair_fold != fold)
    test = np.flatnonzero((pair_fold == fold) & ~weak)
    return train, test
