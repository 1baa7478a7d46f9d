"""Training settings: one frozen dataclass, built from job.json's ``train`` object and CLI flags.

The keys are the sweep spec's ``train`` keys (camelCase, see .ci/CONTRACTS.md); explicit CLI flags override
the job file, the job file overrides the defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
EVAL_CANDIDATES = ("labeled", "corpus")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run; validated on construction."""

    folds: int = field(default=10, metadata={"key": "folds"})
    """Number of cross-validation folds, grouped by query id (>= 2)."""

    epochs: int = field(default=3, metadata={"key": "epochs"})
    """Passes over each fold's training rows (>= 1)."""

    batch_size: int = field(default=1024, metadata={"key": "batchSize"})
    """Rows per micro-batch over all ranks; every row's in-batch negatives are the other rows of it (>= 1)."""

    learning_rate: float = field(default=0.001, metadata={"key": "learningRate"})
    """AdamW learning rate (> 0)."""

    weight_decay: float = field(default=0.0, metadata={"key": "weightDecay"})
    """AdamW decoupled weight decay (>= 0)."""

    precision: str = field(default="auto", metadata={"key": "precision"})
    """auto (bf16 on GPUs that have it, fp16 + GradScaler on V100/T4, fp32 on CPU/MPS), fp32, bf16 or fp16."""

    grad_accumulation: int = field(default=1, metadata={"key": "gradAccumulation"})
    """Micro-batches summed per optimizer step (>= 1). It does NOT add in-batch negatives: the softmax of
    each micro-batch only sees that micro-batch's documents."""

    seed: int = field(default=42, metadata={"key": "seed"})
    """Seeds fold assignment, initialisation and data order (>= 0)."""

    temperature: float = field(default=0.05, metadata={"key": "temperature"})
    """Softmax temperature dividing the cosine similarities (> 0)."""

    logq_correction: bool = field(default=False, metadata={"key": "logQCorrection"})
    """Subtract log(document frequency in the training rows) from the logits (popularity correction)."""

    eval_candidates: str = field(default="labeled", metadata={"key": "evalCandidates"})
    """labeled: rank each test query's judged documents; corpus: rank every document of the dataset."""

    hidden_dim: int = field(default=512, metadata={"key": "hiddenDim"})
    """Hidden width of each tower's MLP (>= 1)."""

    checkpoint_minutes: float = field(default=10.0, metadata={"key": "checkpointMinutes"})
    """Minutes between mid-epoch checkpoints (> 0); a checkpoint is also written at every epoch end."""

    max_examples: int | None = field(default=None, metadata={"key": "maxExamples"})
    """Use only the first N rows of the pairs file (None: all rows)."""

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                value = getattr(self, _attr(key))
                raise UserError(
                    f"setting {key} is {value!r}, but it must be {rule}.",
                    where=f"field {key}",
                    fix=f"set {key} to {rule}.",
                )

        for attr, minimum in (
            ("folds", 2),
            ("epochs", 1),
            ("batch_size", 1),
            ("grad_accumulation", 1),
            ("seed", 0),
            ("hidden_dim", 1),
        ):
            key = _key(attr)
            need(
                _is_int(getattr(self, attr)) and getattr(self, attr) >= minimum,
                key,
                f"an integer >= {minimum}",
            )
        need(
            self.max_examples is None or (_is_int(self.max_examples) and self.max_examples >= 1),
            "maxExamples",
            "an integer >= 1 or null",
        )
        for attr in ("learning_rate", "temperature", "checkpoint_minutes"):
            need(_is_number(getattr(self, attr)) and getattr(self, attr) > 0, _key(attr), "a number > 0")
        need(_is_number(self.weight_decay) and self.weight_decay >= 0, "weightDecay", "a number >= 0")
        need(self.precision in PRECISIONS, "precision", " or ".join(PRECISIONS))
        need(self.eval_candidates in EVAL_CANDIDATES, "evalCandidates", " or ".join(EVAL_CANDIDATES))
        need(isinstance(self.logq_correction, bool), "logQCorrection", "true or false")

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
        job = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            "the job file does not exist.", file=str(path), fix="pass the path of a job.json."
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
                f"unknown train setting {key!r}.",
                file=str(path),
                where=f"field train.{key}",
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
