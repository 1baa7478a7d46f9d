import numpy as np
import pytest

from two_tower.cv import assign_folds, query_folds, split_rows
from two_tower.errors import UserError


def test_folds_keep_queries_apart_and_weak_rows_in_training_only():
    query_ids = [f"q{i}" for i in range(50)]
    pair_query = np.repeat(np.arange(50), 4)
    weak = np.tile([False, False, False, True], 50)
    assignment = assign_folds(query_ids, 5, seed=7)
    pair_fold = query_folds(query_ids, assignment)[pair_query]
    for fold in range(5):
        train, test = split_rows(pair_fold, weak, fold)
        assert not set(pair_query[train]) & set(pair_query[test])
        assert not weak[test].any()
        assert len(set(pair_query[test])) == 10
        assert len(train) + len(test) + int(weak[pair_fold == fold].sum()) == len(pair_query)


def test_folds_are_deterministic_from_the_seed():
    ids = [f"q{i}" for i in range(100)]
    assert assign_folds(ids, 10, 1) == assign_folds(list(reversed(ids)), 10, 1)
    assert assign_folds(ids, 10, 1) != assign_folds(ids, 10, 2)


def test_weak_only_queries_train_in_every_fold():
    assignment = assign_folds(["a", "b"], 2, 0)
    assert query_folds(["a", "b", "weak-only"], assignment)[2] == -1


def test_fails_when_fewer_queries_than_folds():
    with pytest.raises(UserError, match="only 3 queries"):
        assign_folds(["a", "b", "c"], 4, 0)
