"""The trainer's final model (OUT/model/) into the store, before results.json names it.

results.json is the last object a job writes: its arrival means the outputs are all there, so the model's
files go up first, model.safetensors before model.json (model.json carries the weights' SHA-256, so a reader
that finds it finds the weights it describes). The digest is checked here before anything is uploaded: a
model/ whose weights do not match their model.json never reaches the store.

The order holds for readers because S3 reads after a successful PUT are strongly consistent: "After a
successful write of a new object, or an overwrite or delete of an existing object, any subsequent read request
immediately receives the latest version of the object" (https://aws.amazon.com/s3/consistency/), so a reader
that sees results.json then finds the model's objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import contract
from contract import CONFIG_FILES, TRAINER_OUT
from contract import sha256_file as sha256_of

from .storage import Store

MODEL = CONFIG_FILES["model"]
"""The config's model/ folder in the store (names.json store.configFiles.model)."""
WEIGHTS, MANIFEST = "model.safetensors", "model.json"  # two_tower/export.py writes these two files


class ModelError(Exception):
    """OUT/model/ is there but cannot be uploaded as it is (message: what is wrong, and the fix)."""


def model_key(sweep: str, config: str) -> str:
    """The full store key of a config's model/ folder: sweeps/<sweep>/<config>/model/."""
    return contract.fill(contract.NAMES["store"]["config"], sweep=sweep, config=config) + MODEL


def upload_model(store: Store, out: Path, sweep: str, config: str) -> dict[str, str] | None:
    """Upload OUT/model/ under the config's model/ and return results.json's ``model`` entry
    (``{"key", "sha256"}``), or None when the trainer exported no model (finalModel false)."""
    folder = Path(out) / TRAINER_OUT["model"]
    if not folder.is_dir():
        return None
    manifest_path, weights_path = folder / MANIFEST, folder / WEIGHTS
    try:
        recorded = json.loads(manifest_path.read_text())["weights"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(
            f"The trainer's {manifest_path} is missing or unreadable ({err}). Fix: rerun the job; the "
            "trainer exports the model again from its last checkpoint."
        ) from None
    try:
        actual = sha256_of(weights_path)
    except OSError as err:
        raise ModelError(
            f"The trainer's {weights_path} is unreadable ({err.strerror or err}). Fix: rerun the job; "
            "the trainer exports the model again from its last checkpoint."
        ) from None
    if actual != recorded:
        raise ModelError(
            f"The trainer's {weights_path} does not match the sha256 in {manifest_path} "
            f"(sha256 {actual[:12]}…, recorded {recorded[:12]}…). Fix: rerun the job; the trainer exports "
            "the model again."
        )
    store.upload(weights_path, MODEL + WEIGHTS)
    store.upload(manifest_path, MODEL + MANIFEST)
    return {"key": model_key(sweep, config), "sha256": actual}
