"""Where the features live during training, and how a micro-batch's inputs get to the device.

``device`` (the default where they fit): both feature tables are copied to the device once, in the towers'
input dtype (``Runtime.feature_dtype``: bf16/fp16 under autocast, half of fp32), and a batch is a gather
there. ``host``: the tables stay in host memory (the memory-mapped arrays ``data.load_dataset`` returns, not
a copy); each batch's rows are gathered on the host into a pinned staging buffer and copied to the device on
a side stream, the next batch's copy issued while the current step runs. Both give the same inputs, so the
same results (tests/test_features.py). ``auto`` picks ``device`` when features + training fit the free device
memory with a margin, else ``host``, and says why.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .data import Dataset
from .model import TEXT_EMBED_DIM, training_bytes
from .runtime import Runtime

PLACEMENTS = ("auto", "device", "host")
DEVICE_MARGIN = 0.85
"""Share of the free device memory ``auto`` plans to use: the caching allocator's fragmentation,
torch.compile's workspaces and the CUDA context need the rest."""
UPLOAD_ROWS_BYTES = 1 << 26
"""Bytes copied to the device at once when the tables are uploaded: the fp32 -> bf16 cast happens on the
device chunk by chunk, so no fp32 copy of a whole table is ever there."""


def device_bytes(data: Dataset, rt: Runtime, folds: int, candidates: str) -> int:
    """Device bytes of the ``device`` placement beyond training: the feature tables in their device dtype,
    the pair index arrays, and the evaluation's vectors (a fold's test queries, and the whole corpus with
    ``candidates`` corpus; labeled scoring holds one chunk of documents)."""
    itemsize = torch.empty((), dtype=rt.input_dtype(torch.from_numpy(data.query_features[:0]).dtype)).itemsize
    tables = (data.query_features.shape[0] + data.doc_features.shape[0]) * data.query_features.shape[1]
    out_dim = TEXT_EMBED_DIM if data.kind == "text" else data.input_dim
    eval_rows = math.ceil(len(data.query_ids) / folds) + (len(data.doc_ids) if candidates == "corpus" else 0)
    return tables * itemsize + 2 * 8 * data.num_pairs + eval_rows * out_dim * 4


def choose_placement(
    asked: str,
    data: Dataset,
    rt: Runtime,
    hidden_dim: int,
    batch: int,
    folds: int,
    candidates: str,
    available: int | None,
    source: str,
) -> tuple[str, str]:
    """(``device`` | ``host``, the reason, for the log)."""
    if asked != "auto":
        return asked, f"--feature-placement {asked}"
    if rt.device.type != "cuda":
        return "device", f"on {rt.device.type} the device is host memory: the loaded arrays are used in place"
    need = device_bytes(data, rt, folds, candidates) + training_bytes(
        data.input_dim, hidden_dim, data.kind == "text", batch
    )
    gib = 2**30
    if available is None or need <= DEVICE_MARGIN * available:
        free = "unknown" if available is None else f"{available / gib:,.1f} GiB"
        return "device", f"features + training need {need / gib:,.1f} GiB of {free} free ({source or 'n/a'})"
    return "host", (
        f"features + training need {need / gib:,.1f} GiB, more than {DEVICE_MARGIN:.0%} of the "
        f"{available / gib:,.1f} GiB free ({source}): features stay in host memory, batches are copied"
    )


def upload(array: np.ndarray, rt: Runtime) -> torch.Tensor:
    """``array`` on the device in its input dtype, copied in chunks (no full fp32 copy on the device)."""
    src = torch.from_numpy(array)
    dtype = rt.input_dtype(src.dtype)
    if rt.device.type == "cpu" and dtype == src.dtype:
        return src  # shares the numpy (memory-mapped) array: no copy
    out = torch.empty(src.shape, dtype=dtype, device=rt.device)
    rows = max(1, UPLOAD_ROWS_BYTES // max(1, src[0].numel() * src.element_size()))
    for start in range(0, len(src), rows):
        out[start : start + rows].copy_(src[start : start + rows])
    return out


class DeviceFeatures:
    """Both tables on the device: a batch is two gathers there."""

    placement = "device"

    def __init__(self, data: Dataset, rt: Runtime, pair_query: torch.Tensor, pair_doc: torch.Tensor):
        self.query, self.doc = upload(data.query_features, rt), upload(data.doc_features, rt)
        self.pq, self.pd = pair_query, pair_doc

    def start_epoch(self, order_host: torch.Tensor, batches: list[torch.Tensor]) -> None:
        """Nothing to prepare: the rows are gathered on the device when asked for."""

    def inputs(self, rows: torch.Tensor, mb: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query[self.pq[rows]], self.doc[self.pd[rows]]


class HostFeatures:
    """Tables in host memory; each micro-batch gathered on the host and copied to the device, one ahead.

    On CUDA the gather writes into one of two pinned buffers and the copy runs on a side stream, so it
    overlaps the step before it; the buffer is reused only once its copy has finished (an event). Off CUDA
    (CPU tests) the same gather runs without pinning or streams."""

    placement = "host"

    def __init__(self, data: Dataset, rt: Runtime):
        self.rt = rt
        self.query, self.doc = torch.from_numpy(data.query_features), torch.from_numpy(data.doc_features)
        self.pq, self.pd = torch.from_numpy(data.pair_query), torch.from_numpy(data.pair_doc)
        self.cuda = rt.device.type == "cuda"
        self.stream = torch.cuda.Stream(rt.device) if self.cuda else None
        self.slots: list[dict] = [{}, {}]
        self.batches: list[torch.Tensor] = []
        self.ready: dict[int, tuple[torch.Tensor, torch.Tensor, object]] = {}

    def start_epoch(self, order_host: torch.Tensor, batches: list[torch.Tensor]) -> None:
        """The epoch's micro-batches as host row indices (this rank's share of each), in step order."""
        self.batches, self.ready = batches, {}

    def _gather(self, table: torch.Tensor, index: torch.Tensor, slot: dict, key: str) -> torch.Tensor:
        shape = (len(index), *table.shape[1:])
        buf = slot.get(key)
        if buf is None or buf.shape[0] < len(index):
            buf = torch.empty(shape, dtype=table.dtype, pin_memory=self.cuda)
            slot[key] = buf
        out = buf[: len(index)]
        torch.index_select(table, 0, index, out=out)
        return out

    def _prepare(self, mb: int) -> None:
        if mb in self.ready or mb >= len(self.batches):
            return
        rows = self.batches[mb]
        slot = self.slots[mb % 2]
        done = slot.get("copied")
        if done is not None:
            done.synchronize()  # the copy out of this buffer (two batches ago) has finished
        q = self._gather(self.query, self.pq[rows], slot, "q")
        d = self._gather(self.doc, self.pd[rows], slot, "d")
        dtype_q, dtype_d = self.rt.input_dtype(q.dtype), self.rt.input_dtype(d.dtype)
        if not self.cuda:
            # The buffers are reused: the batch gets its own tensors (a copy of a few MB, CPU only).
            self.ready[mb] = (q.to(dtype_q, copy=True), d.to(dtype_d, copy=True), None)
            return
        with torch.cuda.stream(self.stream):
            qd = q.to(self.rt.device, non_blocking=True).to(dtype_q)
            dd = d.to(self.rt.device, non_blocking=True).to(dtype_d)
            event = torch.cuda.Event()
            event.record(self.stream)
        slot["copied"] = event
        self.ready[mb] = (qd, dd, event)

    def inputs(self, rows: torch.Tensor, mb: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._prepare(mb)
        q, d, event = self.ready.pop(mb)
        if event is not None:
            current = torch.cuda.current_stream(self.rt.device)
            current.wait_event(event)
            q.record_stream(current)  # made on the side stream, used on this one: keep the allocator safe
            d.record_stream(current)
        self._prepare(mb + 1)  # the next batch's gather and copy overlap this step's compute
        return q, d


def make_features(placement: str, data: Dataset, rt: Runtime, pq: torch.Tensor, pd: torch.Tensor):
    return DeviceFeatures(data, rt, pq, pd) if placement == "device" else HostFeatures(data, rt)
