import json

import pytest

from two_tower.config import TrainConfig, build_config
from two_tower.errors import UserError


def test_job_file_settings_apply_and_flags_override_them(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {
                "version": 1,
                "examples": 500,
                "train": {"folds": 4, "epochs": 2, "batchSize": 64, "logQCorrection": True},
            }
        )
    )
    config = build_config(job, {"epochs": 5, "batch_size": None})
    assert (config.folds, config.epochs, config.batch_size, config.logq_correction) == (4, 5, 64, True)
    assert config.max_examples == 500
    assert config.to_json()["batchSize"] == 64 and config.to_json()["maxExamples"] == 500


def test_defaults_match_the_contract():
    assert TrainConfig().to_json() == {
        "folds": 10,
        "epochs": 3,
        "batchSize": 1024,
        "learningRate": 0.001,
        "weightDecay": 0.0,
        "precision": "auto",
        "gradAccumulation": 1,
        "seed": 42,
        "temperature": 0.05,
        "logQCorrection": False,
        "evalCandidates": "labeled",
        "hiddenDim": 512,
        "checkpointMinutes": 10.0,
        "finalModel": True,
        "maxExamples": None,
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"folds": 1}, "folds"),
        ({"learning_rate": 0}, "learningRate"),
        ({"precision": "fp8"}, "precision"),
        ({"eval_candidates": "all"}, "evalCandidates"),
        ({"batch_size": 2.5}, "batchSize"),
    ],
)
def test_fails_when_a_setting_is_out_of_range(settings, field):
    with pytest.raises(UserError) as err:
        TrainConfig(**settings)
    assert f"field {field}" in str(err.value) and "Fix:" in str(err.value)


def test_fails_when_job_file_has_an_unknown_setting(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"train": {"batch_size": 8}}))
    with pytest.raises(UserError, match="train.batch_size"):
        build_config(job, {})


def test_fails_when_job_file_is_not_json(tmp_path):
    job = tmp_path / "job.json"
    job.write_text('{"train": {\n  "folds": ,\n}}')
    with pytest.raises(UserError, match="line 2"):
        build_config(job, {})
