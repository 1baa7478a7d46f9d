"""The progress keys of the trainer's OUT/status.json that the job runner copies into the store's
status.json (.ci/CONTRACTS.md): written by ``two_tower.progress``, read by ``status_board``."""

from __future__ import annotations

PROGRESS_KEYS = (
    "fold",
    "folds",
    "epoch",
    "epochs",
    "step",
    "progress",
    "examplesPerSecond",
    "etaSeconds",
    "loss",
)
"""How far the run is: the job runner copies these into the store's status.json."""
