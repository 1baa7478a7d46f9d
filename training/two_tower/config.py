"""Training settings: one frozen dataclass, built from job.json's ``train`` object and CLI flags.

The keys are the sweep spec's ``train`` keys (camelCase); their defaults and bounds come from
training/contract/train-settings.schema.json; explicit CLI flags override
the job file, the job file overrides the defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from contract import train_properties

from .errors import QUOTE_LIMIT, UserError, quote

_PROPERTIES = train_properties()
"""Types, defaults, enums and bounds of every setting: training/contract/train-settings.schema.json."""
PRECISIONS = tuple(_PROPERTIES["precision"]["enum"])
DEVICES = ("auto", "cpu", "cuda", "mps")
EVAL_CANDIDATES = tuple(_PROPERTIES["evalCandidates"]["enum"])


def _default(key: str) -> Any:
    return _PROPERTIES[key]["default"]


def _check(prop: dict[str, Any], value: Any) -> tuple[str, bool]:
    """The rule a setting's schema states, as words, and whether ``value`` keeps it."""
    if "enum" in prop:
        return " or ".join(prop["enum"]), value in prop["enum"]
    if prop["type"] == "boolean":
        return "true or false", isinstance(value, bool)
    integer = prop["type"] == "integer"
    ok = _is_int(value) if integer else _is_number(value)
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    above = "exclusiveMinimum" in prop
    if ok:
        ok = (value > low if above else value >= low) and value <= prop["maximum"]
    kind = "an integer" if integer else "a number"
    return f"{kind} {'>' if above else '>='} {low} and <= {prop['maximum']}", ok


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; validated on construction."""

    folds: int = field(default=_default("folds"), metadata={"key": "folds"})
    """Number of cross-validation folds, grouped by query id (>= 2)."""

    epochs: int = field(default=_default("epochs"), metadata={"key": "epochs"})
    """Passes over each fold's training rows (>= 1)."""

    batch_size: int = field(default=_default("batchSize"), metadata={"key": "batchSize"})
    """Rows per micro-batch over all ranks; every row's in-batch negatives are the other rows of it (>= 1)."""

    learning_rate: float = field(default=_default("learningRate"), metadata={"key": "learningRate"})
    """AdamW learning rate (> 0)."""

    weight_decay: float = field(default=_default("weightDecay"), metadata={"key": "weightDecay"})
    """AdamW decoupled weight decay (>= 0)."""

    precision: str = field(default=_default("precision"), metadata={"key": "precision"})
    """auto (bf16 on GPUs that have it, fp16 + GradScaler on V100/T4, fp32 on CPU/MPS), fp32, bf16 or fp16."""

    grad_accumulation: int = field(default=_default("gradAccumulation"), metadata={"key": "gradAccumulation"})
    """Micro-batches summed per optimizer step (>= 1). It does NOT add in-batch negatives: the softmax of
    each micro-batch only sees that micro-batch's documents."""

    seed: int = field(default=_default("seed"), metadata={"key": "seed"})
    """Seeds fold assignment, initialisation and data order (>= 0)."""

    temperature: float = field(default=_default("temperature"), metadata={"key": "temperature"})
    """Softmax temperature dividing the cosine similarities (> 0)."""

    logq_correction: bool = field(default=_default("logQCorrection"), metadata={"key": "logQCorrection"})
    """Subtract log(document frequency in the training rows) from the logits (popularity correction)."""

    eval_candidates: str = field(default=_default("evalCandidates"), metadata={"key": "evalCandidates"})
    """labeled: rank each test query's judged documents; corpus: rank every document of the dataset."""

    hidden_dim: int = field(default=_default("hiddenDim"), metadata={"key": "hiddenDim"})
    """Hidden width of each tower's MLP (>= 1)."""

    checkpoint_minutes: float = field(
        default=_default("checkpointMinutes"), metadata={"key": "checkpointMinutes"}
    )
    """Minutes between mid-epoch checkpoints (> 0); a checkpoint is also written at every epoch end."""

    final_model: bool = field(default=_default("finalModel"), metadata={"key": "finalModel"})
    """After the folds, train one model on all rows (same epochs, seed, settings); export it to OUT/model/."""

    max_examples: int | None = field(default=None, metadata={"key": "maxExamples"})
    """Use only the first N rows of the pairs file (None: all rows)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            key = f.metadata["key"]
            value = getattr(self, f.name)
            if key == "maxExamples":
                key = "examples"  # as job.json and the sweep spec call it (--max-examples)
                rule, ok = "an integer >= 1 or null", value is None or (_is_int(value) and value >= 1)
            else:
                rule, ok = _check(_PROPERTIES[key], value)
            if not ok:
                raise UserError(
                    f"setting {key} is {quote(value)}, but it must be {rule}.",
                    where=f"field {key}",
                    fix=f"set {key} to {rule}.",
                )

    def to_json(self) -> dict[str, Any]:
        """The resolved settings under their camelCase keys (as in results.json's ``config``)."""
        return {f.metadata["key"]: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _key(attr: str) -> str:
    return next(f.metadata["key"] for f in fields(TrainConfig) if f.name == attr)


def _attr(key: str) -> str:
    return next(f.name for f in fields(TrainConfig) if f.metadata["key"] == key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


KEYS = {f.metadata["key"]: f.name for f in fields(TrainConfig)}


def read_job_settings(path: Path) -> dict[str, Any]:
    """The ``train`` object of a job.json, plus ``examples`` as ``max_examples``, keyed by attribute name."""
    try:
        job = json.loads(path.read_bytes().decode("utf-8"))  # JSON is UTF-8 (RFC 8259), whatever the locale
    except FileNotFoundError:
        raise UserError(
            "the job file does not exist.", file=str(path), fix="pass the path of a job.json."
        ) from None
    except OSError as err:
        raise UserError(
            f"cannot read the job file: {(err.strerror or str(err)).lower()}.",
            file=str(path),
            fix="pass the path of a readable job.json file.",
        ) from None
    except UnicodeDecodeError as err:
        raise UserError(
            f"the job file is not UTF-8 text (byte {err.object[err.start]:#04x} at byte {err.start + 1:,}).",
            file=str(path),
            fix="save it as UTF-8, as JSON requires.",
        ) from None
    except json.JSONDecodeError as err:
        raise UserError(
            f"the job file is not valid JSON ({err.msg}).",
            file=str(path),
            where=f"line {err.lineno}",
            fix="correct the JSON syntax there.",
        ) from None
    train = job.get("train", {}) if isinstance(job, dict) else None
    if not isinstance(train, dict):
        raise UserError(
            "'train' must be an object.",
            file=str(path),
            where="field train",
            fix='give train as {"folds": 10, ...}.',
        )
    settings: dict[str, Any] = {}
    for key, value in train.items():
        if key not in KEYS or key == "maxExamples":
            raise UserError(
                f"unknown train setting {quote(key)}.",
                file=str(path),
                where=f"field train.{key if len(key) <= QUOTE_LIMIT else quote(key)}",
                fix="use one of " + ", ".join(k for k in KEYS if k != "maxExamples") + ".",
            )
        settings[KEYS[key]] = value
    if job.get("examples") is not None:
        settings["max_examples"] = job["examples"]
    return settings


def build_config(job_path: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the job file's settings, then the explicit CLI overrides (None = not given)."""
    settings = read_job_settings(job_path) if job_path else {}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**settings)
    except UserError as err:
        if job_path is None:
            raise
        source = f"{job_path} (or the flag overriding it)"
        raise UserError(err.problem, file=source, where=err.where, fix=err.fix) from None
