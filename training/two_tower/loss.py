"""In-batch softmax loss with temperature, accidental-hit masking, optional logQ correction and optional
per-row sample weights (the pairs file's ``weight`` column).

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
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy (mean or sum over queries) of each query against all documents of the (global) batch.

    q: [B, E] normalised query vectors; d_all: [M, E] normalised document vectors (the batch's, gathered over
    ranks; padding rows have doc id -1); labels: [B] column of each query's own document; query_doc: [B] doc
    id of each query's pair; doc_all: [M] doc id of each column; log_q: [M] log sampling probability of each
    column's document, subtracted from its logits (logQ correction), or None; weight: [B] sample weight of
    each query's term (>= 0), or None for 1 each. With weights, "sum" is sum(w * loss) and "mean" the weighted
    mean sum(w * loss) / sum(w) (0 when every weight is 0). A weight scales the query's own term only: its
    document stays a negative for the other queries, so weight 0 equals leaving the query out of ``q``.
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
    if weight is None:
        return F.cross_entropy(logits, labels, reduction=reduction)
    weighted = (F.cross_entropy(logits, labels, reduction="none") * weight.float()).sum()
    return weighted if reduction == "sum" else weighted / _nonzero(weight.float().sum())


def _nonzero(total: torch.Tensor) -> torch.Tensor:
    # A batch whose weights are all 0 has every term 0: divide by 1, not 0 (which would give NaN).
    return torch.where(total > 0, total, torch.ones_like(total))


def pair_weights(weight, device: torch.device) -> torch.Tensor | None:
    """The dataset's sample weights (float32 [N]) on the device, or None when every one is 1: the loss is then
    computed exactly as without the column (the same numbers, no extra work)."""
    return None if (weight == 1).all() else torch.tensor(weight, dtype=torch.float32, device=device)


def batch_weight(weight: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | int:
    """What a micro-batch's summed loss is divided by to make it a mean: its row count without weights, else
    the sum of its rows' weights (1 when that is 0). A tensor then: no device-to-host sync per step."""
    return len(rows) if weight is None else _nonzero(weight[rows].float().sum())
