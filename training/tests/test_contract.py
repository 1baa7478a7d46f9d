"""The Python side follows training/contract/: names, states, exit codes, train settings, store keys and
object tags come from names.json and the schemas, and what the runner writes to S3 keeps them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from jobkit import s3  # noqa: F401 - fixture

import contract
from spot_runner.exits import EXIT_INTERRUPTED, EXIT_STOPPED
from spot_runner.progress_keys import PROGRESS_KEYS
from spot_runner.storage import PreconditionFailed, open_store
from spot_runner.sync import CheckpointSync
from two_tower.config import TrainConfig

TRAINING = Path(__file__).resolve().parent.parent


def test_names_sh_is_what_names_json_gives():
    # bootstrap.sh sources names.sh; a names.json change without `npm run contract:types` fails here.
    done = subprocess.run(
        [sys.executable, "-m", "contract.names_sh", "--check"], cwd=TRAINING, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_state_classes_spell_the_states_of_names_json():
    assert [contract.State.PENDING, contract.State.STOPPED] == ["PENDING", "STOPPED"]
    assert contract.FINAL_STATES == {"SUCCEEDED", "FAILED", "STOPPED"}
    assert contract.TrainerState.INTERRUPTED == "INTERRUPTED"
    assert set(contract.NAMES["states"]["all"]) == set(
        contract.schema("status")["properties"]["state"]["enum"]
    ), "the status schema and names.json list the same states"


def test_exit_codes_come_from_names_json():
    assert (EXIT_INTERRUPTED, EXIT_STOPPED) == (75, 76)
    assert contract.EXIT_CODES["trainer"]["interrupted"] == EXIT_INTERRUPTED


def test_train_config_has_exactly_the_schema_settings_with_their_defaults():
    props = contract.train_properties()
    config = TrainConfig()
    keys = {f.metadata["key"]: f.name for f in dataclasses.fields(TrainConfig)}
    assert set(keys) - {"maxExamples"} == set(props), (
        "a setting added to the schema needs a TrainConfig field"
    )
    for key, prop in props.items():
        assert getattr(config, keys[key]) == prop["default"], key


@pytest.mark.parametrize(
    ("key", "value"), [("hiddenDim", 10**9), ("folds", 1), ("learningRate", 0.0), ("precision", "int8")]
)
def test_fails_when_a_setting_breaks_a_schema_bound(key, value):
    from two_tower.errors import UserError

    attr = {f.metadata["key"]: f.name for f in dataclasses.fields(TrainConfig)}[key]
    with pytest.raises(UserError, match=key):
        TrainConfig(**{attr: value})


def test_progress_keys_are_status_schema_properties():
    assert set(PROGRESS_KEYS) <= set(contract.schema("status")["properties"])


def test_checkpoints_are_uploaded_with_the_tag_the_lifecycle_rule_expires(s3, tmp_path):  # noqa: F811
    local = tmp_path / "checkpoints"
    local.mkdir()
    (local / "ckpt-00000001.pt").write_bytes(b"\x00" * 64)
    store = open_store(s3.uri("sweeps/demo/baseline/"))

    CheckpointSync(store, local).sync()

    key = "sweeps/demo/baseline/checkpoints/ckpt-00000001.pt"
    tags = s3.client.get_object_tagging(Bucket=s3.name, Key=key)["TagSet"]
    assert tags == [{"Key": contract.CHECKPOINT_TAG["key"], "Value": contract.CHECKPOINT_TAG["value"]}]


def test_fails_when_a_conditional_write_to_s3_lost_the_race(s3):  # noqa: F811
    store = open_store(s3.uri("sweeps/demo/baseline/"))
    first = store.put_bytes("status.json", b"{}", if_absent=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("status.json", b"{}", if_absent=True)
    store.put_bytes("status.json", b'{"a": 1}', if_match=first)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("status.json", b'{"a": 2}', if_match=first)


def test_a_script_result_with_nan_is_not_copied_so_results_json_stays_strict_json(tmp_path):
    import json

    from jobkit import job_doc, run_job

    code = tmp_path / "code"
    (code / "results").mkdir(parents=True)
    (code / "train.py").write_text(
        "import os\nopen(os.path.join(os.path.dirname(__file__), 'results', 'r.json'), 'w')"
        ".write('{\"loss\": NaN}')\n"
    )
    store = tmp_path / "store"
    store.mkdir()
    script = {"code": str(code), "entrypoint": "train.py", "args": [], "patches": [], "results": "results/*"}
    (store / "job.json").write_text(json.dumps(job_doc(store.as_uri() + "/", None, script=script)))

    done = run_job(str(store / "job.json"), tmp_path / "work")

    assert done.returncode == 0, done.stderr
    text = (store / "results.json").read_text()
    results = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert results["results"] is None and results["files"] == ["results/r.json"]
    assert contract.problems("results", results) == []
