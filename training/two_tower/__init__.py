"""Two-tower retrieval trainer: k-fold cross-validated nDCG@10, resumable, fast on CPU, CUDA and MPS.

Entry points: ``python -m two_tower.train``, ``python -m two_tower.metrics``, ``python -m two_tower.synth``,
``python -m two_tower.bench``.
"""

__version__ = "0.1.0"
