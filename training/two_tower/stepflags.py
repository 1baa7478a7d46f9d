"""The stop and checkpoint flags, agreed by every rank without making each step wait for the GPU.

Every rank must stop or checkpoint at the same step, so rank-local flags (SIGTERM seen, checkpoint interval
passed) are OR-ed across ranks. Doing that all-reduce at every optimizer step and reading it on the host
stalls the host until the GPU has finished the step, so the host can no longer queue the next step ahead.
Instead, under DDP, every ``EVERY`` optimizer steps the flags are all-reduced asynchronously and copied to
pinned host memory; the result is read ``EVERY`` steps later (long since finished: no stall) and acted on
then, by every rank at the same step. The count runs across epochs and folds (every rank takes the same
steps), so an epoch shorter than ``EVERY`` steps still gets its checks.

Stop latency, documented in README "Scale and speed": a flag raised on any rank is acted on at most
``2 * EVERY - 1`` optimizer steps later (well under a second on a GPU; on 2 CPU cores with batch 1024 about
2-3 s), far inside the spot notice's two minutes. A single process reads its own flags at every step (no
collective, nothing to wait for).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .runtime import Runtime

EVERY = 8
"""Optimizer steps between two flag all-reduces under DDP."""


class StepFlags:
    def __init__(self, rt: Runtime, every: int = EVERY):
        self.rt, self.every = rt, every
        self.count = 0
        self.pending: tuple[torch.Tensor, object] | None = None

    def _read(self) -> tuple[bool, bool]:
        host, done = self.pending  # type: ignore[misc]
        if done is not None:
            done.synchronize()
        return bool(host[0]), bool(host[1])

    def agree(self, stop: bool, checkpoint_due: bool) -> tuple[bool, bool]:
        """(stop now, checkpoint now), the same on every rank."""
        if not self.rt.distributed:
            return stop, checkpoint_due
        self.count += 1
        if self.count % self.every:
            return False, False
        agreed = self._read() if self.pending is not None else (False, False)
        flags = torch.tensor([stop, checkpoint_due], dtype=torch.int32, device=self.rt.device)
        work = dist.all_reduce(flags, op=dist.ReduceOp.MAX, async_op=True)
        if self.rt.device.type == "cuda":
            work.wait()  # NCCL: makes the current stream wait for the reduction; the host does not wait
            host = torch.empty(2, dtype=torch.int32, pin_memory=True)
            host.copy_(flags, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        else:
            work.wait()  # gloo: the reduction of two integers between processes on one machine
            host, done = flags, None
        self.pending = (host, done)
        return agreed
