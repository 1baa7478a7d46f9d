"""The contract between TypeScript, Python and bash, read from the JSON files beside this module.

``names.json`` holds every shared name (stacks, groups, alarms, tags, SSM parameters, metrics, store
keys, states, exit codes); ``*.schema.json`` are JSON Schemas (draft 2020-12) of the files the parts
exchange: job.json, status.json, control.json, lease.json, results.json, spend.json and the trainer settings.
TypeScript reads the same files through ``lib/contract/``; bash reads ``names.sh``, generated from
names.json by ``python -m contract.names_sh``. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMAS = ("job", "status", "control", "lease", "scheduled", "results", "spend", "train-settings")
"""The schema files, ``<name>.schema.json``."""

NAMES: dict[str, Any] = json.loads((HERE / "names.json").read_text(encoding="utf-8"))

STATES: tuple[str, ...] = tuple(NAMES["states"]["all"])
FINAL_STATES: frozenset[str] = frozenset(NAMES["states"]["final"])
OUTCOMES: frozenset[str] = frozenset(NAMES["states"]["outcomes"])
RUNNING_STATES: frozenset[str] = frozenset(NAMES["states"]["running"])
TRAINER_STATES: tuple[str, ...] = tuple(NAMES["trainerStates"])
CONFIG_FILES: dict[str, str] = NAMES["store"]["configFiles"]
SWEEP_FILES: dict[str, str] = NAMES["store"]["sweepFiles"]
TRAINER_OUT: dict[str, str] = {k: v for k, v in NAMES["trainerOut"].items() if not k.startswith("$")}
"""File names in the trainer's --out directory, read by the job runner."""
CHECKPOINT_TAG: dict[str, str] = NAMES["objectTags"]["checkpoint"]
EXIT_CODES: dict[str, dict[str, int]] = NAMES["exitCodes"]
REQUESTERS: dict[str, str] = NAMES["requesters"]
STOP_CAUSES: dict[str, str] = {k: v for k, v in NAMES["stopCauses"].items() if not k.startswith("$")}
"""status.json ``stoppedBy`` when the job runner stopped the job on its own (its deadline, a scale-in)."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, as lowercase hex, read 1 MiB at a time. Every digest the parts exchange
    (checkpoint .sha256 files, model.json's weights, results.json's data digests, the embedding cache's
    manifest) is this, so a digest written by one package is checked by another the same way."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fill(template: str, **parts: str) -> str:
    """A names.json template with its placeholders filled: fill("sweeps/{sweep}/", sweep="demo")."""
    return template.format(**parts)


@cache
def schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``<name>.schema.json``."""
    if name not in SCHEMAS:
        raise KeyError(f"no contract schema {name!r}; the schemas are {', '.join(SCHEMAS)}")
    return json.loads((HERE / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def _validator(name: str):
    # jsonschema is imported here so that reading names (bootstrap, --fail) needs nothing installed.
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (schema(n)["$id"], Resource.from_contents(schema(n))) for n in SCHEMAS
    )
    return Draft202012Validator(
        schema(name), registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def problems(name: str, document: object, limit: int = 20) -> list[str]:
    """What is wrong with ``document`` against schema ``name``: one line per problem, each naming the
    field (``train.folds``), empty when it conforms."""
    found = []
    for error in sorted(_validator(name).iter_errors(document), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
        found.append(f"{(where or '(top level)').replace('.[', '[')}: {error.message}")
        if len(found) >= limit:
            break
    return found


def train_properties() -> dict[str, dict[str, Any]]:
    """The trainer settings with their types, defaults and bounds, by camelCase key."""
    return schema("train-settings")["$defs"]["settings"]["properties"]


class State:
    """The job states of status.json (names.json ``states.all``, in that order)."""

    PENDING, BOOTSTRAPPING, TRAINING, SUCCEEDED, FAILED, STOPPED = NAMES["states"]["all"]


class TrainerState:
    """The states of the trainer's own OUT/status.json (names.json ``trainerStates``)."""

    TRAINING, SUCCEEDED, FAILED, INTERRUPTED = NAMES["trainerStates"]


class Action:
    """The actions of control.json requests (names.json ``controlActions``)."""

    STOP, START = NAMES["controlActions"]


class Mode:
    """How a job runs, as status.json and results.json say (names.json ``modes``)."""

    TRAIN, SCRIPT = NAMES["modes"]
