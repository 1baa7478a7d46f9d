"""Two towers: residual MLPs over precomputed embeddings (or hashed n-gram bags), L2-normalised outputs.

The last layer of each residual block starts at zero, so an untrained model scores exactly the raw cosine
of the input embeddings: training starts from that baseline and can only move away from it by learning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import TEXT_BUCKETS

TEXT_EMBED_DIM = 64
"""Width of the shared n-gram embedding table used when the dataset has texts instead of embeddings."""


class Tower(nn.Module):
    """x -> normalize(x + W2 gelu(W1 layernorm(x))), W2 zero-initialised."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden_dim)
        self.down = nn.Linear(hidden_dim, dim)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x.float(): features may arrive in bf16/fp16 (runtime.feature_dtype); the residual sum stays fp32.
        h = x.float() + self.down(F.gelu(self.up(self.norm(x))))
        return F.normalize(h.float(), dim=-1)


class TwoTower(nn.Module):
    """Query and document towers; ``text=True`` adds one n-gram EmbeddingBag shared by both sides (so the
    untrained model scores the n-gram overlap of query and document)."""

    def __init__(self, input_dim: int, hidden_dim: int, text: bool = False):
        super().__init__()
        self.bag = nn.EmbeddingBag(TEXT_BUCKETS, TEXT_EMBED_DIM, mode="sum", padding_idx=0) if text else None
        dim = TEXT_EMBED_DIM if text else input_dim
        self.query_tower = Tower(dim, hidden_dim)
        self.doc_tower = Tower(dim, hidden_dim)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.bag(x) if self.bag is not None else x

    def encode_queries(self, x: torch.Tensor) -> torch.Tensor:
        return self.query_tower(self._inputs(x))

    def encode_docs(self, x: torch.Tensor) -> torch.Tensor:
        return self.doc_tower(self._inputs(x))

    def forward(self, q: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_queries(q), self.encode_docs(d)


def parameter_count(input_dim: int, hidden_dim: int, text: bool = False) -> int:
    """Parameters of ``TwoTower(input_dim, hidden_dim, text)``, counted without building it."""
    dim = TEXT_EMBED_DIM if text else input_dim
    tower = 2 * dim + (dim * hidden_dim + hidden_dim) + (hidden_dim * dim + dim)  # norm, up, down
    return 2 * tower + (TEXT_BUCKETS * TEXT_EMBED_DIM if text else 0)


def training_bytes(input_dim: int, hidden_dim: int, text: bool, batch_size: int) -> int:
    """About how many bytes training this model takes on its device, before the data: fp32 weights,
    gradients and AdamW's two moment estimates (4 x 4 bytes per parameter), plus the activations autograd
    keeps for one micro-batch (per tower and row: the input, its norm and the output, 3 x dim; the hidden
    pre-activation, GELU output and its gradient, 3 x hidden). An estimate, to refuse what cannot fit."""
    dim = TEXT_EMBED_DIM if text else input_dim
    activations = 2 * batch_size * (3 * dim + 3 * hidden_dim) * 4
    return 16 * parameter_count(input_dim, hidden_dim, text) + activations
