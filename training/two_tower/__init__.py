"""Two-tower retrieval trainer: k-fold cross-validated nDCG@10, resumable, fast on CPU, CUDA and MPS.

Entry points: ``python -m two_tower.train``, ``python -m two_tower.metrics``, ``python -m two_tower.synth``,
``python -m two_tower.bench``.

This package is the trainer alone (data, model, loss, cv, metrics, evaluate, checkpoint, runtime, train,
bench, synth, config, errors, progress, interrupt). The job runner that starts it on an instance, keeps the
store's status, syncs checkpoints and forwards a spot interruption notice as SIGTERM is the separate,
torch-free ``spot_runner`` package; the trainer imports only its small shared modules (``exits``,
``clock``, ``progress_keys``).
"""

__version__ = "0.1.0"
