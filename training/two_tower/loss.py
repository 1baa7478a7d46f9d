"""In-batch softmax loss with temperature, accidental-hit masking and optional logQ correction.

Always computed in fp32, whatever the autocast precision of the towers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 that passes gradients back to the rank that produced each slice.

    Every rank's loss uses every rank's documents, so the gradient of a slice is the sum over ranks of the
    gradients flowing into it: all_reduce(SUM) then keep our slice (what torch.distributed.nn's deprecated
    all_gather does with a reduce-scatter). With DDP averaging parameter gradients over ranks, the result is
    the gradient of the mean loss over the global batch.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x from all ranks (equal shapes), differentiable; identity in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def in_batch_softmax_loss(
    q: torch.Tensor,
    d_all: torch.Tensor,
    labels: torch.Tensor,
    query_doc: torch.Tensor,
    doc_all: torch.Tensor,
    temperature: float,
    log_q: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy (mean or sum over queries) of each query against all documents of the (global) batch.

    q: [B, E] normalised query vectors; d_all: [M, E] normalised document vectors (the batch's, gathered over
    ranks; padding rows have doc id -1); labels: [B] column of each query's own document; query_doc: [B] doc
    id of each query's pair; doc_all: [M] doc id of each column; log_q: [M] log sampling probability of each
    column's document, subtracted from its logits (logQ correction), or None.
    """
    logits = (q.float() @ d_all.float().T) / temperature
    if log_q is not None:
        logits = logits - log_q.float().unsqueeze(0)
    # Accidental hits: the same document appearing in another column of the batch is not a negative;
    # padding columns (id -1) are not documents at all.
    mask = query_doc.unsqueeze(1) == doc_all.unsqueeze(0)
    mask[torch.arange(len(labels), device=labels.device), labels] = False
    mask |= (doc_all < 0).unsqueeze(0)
    logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, labels, reduction=reduction)
