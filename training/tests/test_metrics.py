import math

import numpy as np
import pytest

from two_tower.metrics import main, ndcg_at_k, ndcg_from_dicts


def test_graded_relevance_with_a_relevant_doc_never_retrieved():
    run = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7}}
    qrels = {"q1": {"a": 3, "b": 0, "c": 2, "d": 1}}  # d is relevant but not in the run
    dcg = 3 / math.log2(2) + 0 + 2 / math.log2(4)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_from_dicts(run, qrels)["q1"] == pytest.approx(dcg / idcg, abs=1e-12)


def test_ties_are_broken_by_doc_id_descending_like_trec_eval():
    # Equal scores: trec_eval's comp_sim_docno puts "y" before "x" (strcmp(ptr2, ptr1)).
    run = {"q": {"x": 0.5, "y": 0.5}}
    qrels = {"q": {"x": 1, "y": 0}}
    assert ndcg_from_dicts(run, qrels)["q"] == pytest.approx(1 / math.log2(3))
    qrels_swapped = {"q": {"x": 0, "y": 1}}
    assert ndcg_from_dicts(run, qrels_swapped)["q"] == pytest.approx(1.0)


def test_rank_column_is_ignored_and_scores_decide():
    run = {"q": {"low": 0.1, "high": 0.9}}
    assert ndcg_from_dicts(run, {"q": {"high": 1}})["q"] == pytest.approx(1.0)


def test_query_without_relevant_docs_scores_zero():
    assert ndcg_from_dicts({"q": {"a": 1.0, "b": 0.5}}, {"q": {"a": 0, "b": 0}})["q"] == 0.0


def test_cutoff_ignores_relevant_doc_below_rank_k():
    run = {"q": {f"d{i:02d}": 1.0 - i / 100 for i in range(11)}}
    assert ndcg_from_dicts(run, {"q": {"d10": 1}}, k=10)["q"] == 0.0
    assert ndcg_from_dicts(run, {"q": {"d10": 1}}, k=11)["q"] == pytest.approx(1 / math.log2(12))


def test_mean_is_over_queries_in_both_files(tmp_path, capsys):
    qrels = tmp_path / "qrels"
    qrels.write_text("q1 0 a 1\nq1 0 b 0\nq2 0 a 2\nq3 0 z 1\n")
    run = tmp_path / "run"
    run.write_text("q1 Q0 a 1 0.9 t\nq1 Q0 b 2 0.8 t\nq2 Q0 b 1 0.9 t\nq4 Q0 a 1 1.0 t\n")
    assert main([str(qrels), str(run)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1:] for line in lines] == [["q1", "1.0000"], ["q2", "0.0000"], ["all", "0.5000"]]
    assert lines[0].split()[0] == "ndcg_cut_10"


def test_vectorised_form_matches_dicts_on_random_runs():
    rng = np.random.default_rng(0)
    run, qrels = {}, {}
    for q in range(30):
        docs = [f"d{i}" for i in rng.choice(50, 15, replace=False)]
        run[f"q{q}"] = {d: float(rng.integers(0, 4)) / 4 for d in docs}  # many ties
        qrels[f"q{q}"] = {d: int(rng.integers(0, 3)) for d in docs[:8]}
    per_query = ndcg_from_dicts(run, qrels, k=5)
    for q in run:  # reference: plain sort by (-score, docno desc)
        ranked = sorted(run[q].items(), key=lambda kv: (-kv[1], [-ord(c) for c in kv[0]] + [1]))[:5]
        dcg = sum(qrels[q].get(d, 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
        ideal = sorted(qrels[q].values(), reverse=True)[:5]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        assert per_query[q] == pytest.approx(dcg / idcg if idcg else 0.0)


def test_empty_inputs_give_empty_result():
    assert len(ndcg_at_k([], [], [], [], [], [], 0)) == 0
