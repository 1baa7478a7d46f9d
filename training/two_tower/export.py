"""The trained model users keep: OUT/model/ = model.safetensors (both towers' weights) + model.json.

model.json says what the weights are and how they were made: the format version, the model's shape (input
kind and width, hidden width), the resolved train settings, the digests of the data files, the torch version,
when it was written, the encoder that made the embeddings (``encoder``: {name, identity}, copied from the
data's encoder.json, which two_tower.encode_texts writes and this module only reads; null for data without
one), and the SHA-256 of model.safetensors, which ``python -m two_tower.encode`` verifies
before it trusts the weights. The directory is written under a temporary name and renamed into place, so a
model/ that exists is always complete (a kill mid-export leaves at worst a ``.model-*.tmp`` directory, removed
by the next export).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from contract import TRAINER_OUT
from spot_runner.clock import utcnow

from .checkpoint import sha256_of
from .data import TEXT_BUCKETS
from .encode_texts import read_encoder_record
from .model import TEXT_EMBED_DIM

if TYPE_CHECKING:
    from .train import Trainer

FORMAT_VERSION = 1
"""model.json's ``formatVersion``: encode.py refuses any other."""

WEIGHTS = "model.safetensors"
MANIFEST = "model.json"


def manifest(trainer: Trainer, sha256: str) -> dict[str, Any]:
    """model.json's content for the weights whose file hashes to ``sha256``."""
    data = trainer.data
    text = data.kind == "text"
    return {
        "formatVersion": FORMAT_VERSION,
        "model": {
            "architecture": "two-tower residual MLP (two_tower/model.py)",
            "input": data.kind,  # "embeddings" or "text": what encode must be given
            "inputDim": int(data.input_dim),
            "towerDim": TEXT_EMBED_DIM if text else int(data.input_dim),
            "hiddenDim": trainer.config.hidden_dim,
            "textBuckets": TEXT_BUCKETS if text else None,
            "textEmbedDim": TEXT_EMBED_DIM if text else None,
        },
        "train": trainer.config.to_json(),
        "data": trainer.digests,
        # The pairs file lies in the data directory, beside encoder.json when encode_texts made the vectors.
        "encoder": read_encoder_record(Path(data.files[0]).parent) if data.files else None,
        "torch": torch.__version__,
        "createdAt": utcnow(),
        "weights": {"file": WEIGHTS, "sha256": sha256},
    }


def export_model(out: Path, weights: dict[str, torch.Tensor], trainer: Trainer) -> str:
    """Write OUT/model/ atomically from ``weights`` (the final model's state dict); returns its sha256."""
    out = Path(out)
    target = out / TRAINER_OUT["model"]
    for stray in out.glob(".model-*.tmp"):  # an export killed before its rename
        shutil.rmtree(stray, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".model-", suffix=".tmp"))
    try:
        # safetensors wants contiguous tensors that share no memory (safetensors.torch.save_file).
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}, tmp / WEIGHTS)
        digest = sha256_of(tmp / WEIGHTS)
        (tmp / MANIFEST).write_text(json.dumps(manifest(trainer, digest), indent=2) + "\n")
        for name in (WEIGHTS, MANIFEST):
            os.chmod(tmp / name, 0o644)
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the model is as readable as the other outputs
        if target.exists():
            # rename() cannot replace a non-empty directory: move the old one aside first, then drop it.
            old = target.with_name(f".model-old-{os.getpid()}.tmp")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest
