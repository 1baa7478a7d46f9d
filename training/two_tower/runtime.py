"""Device, precision and distribution: decided once, here, with the reason for each choice logged.

Modelled on karpathy/nanochat ``common.py``: cuda -> mps -> cpu; bf16 autocast where the GPU has it, fp16 with
a GradScaler on GPUs without bf16 (V100, T4), fp32 on CPU and MPS; DDP when started by torchrun.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .errors import UserError


def is_rank0() -> bool:
    """True in a single process and in torchrun's rank 0 (torchrun sets RANK in every worker), also before
    the process group is set up."""
    return int(os.environ.get("RANK", "0")) == 0


def print0(*args: object, **kwargs: object) -> None:
    """print on rank 0 only."""
    if is_rank0():
        print(*args, **kwargs, flush=True)  # type: ignore[call-overload]


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def auto_device() -> tuple[str, str]:
    """The device type to use, cuda -> mps -> cpu, and why: the one place this choice is made (the
    trainer's ``--device auto`` and the job runner's SPOT_SWEEP_DEVICE for user scripts)."""
    if torch.cuda.is_available():
        return "cuda", "CUDA is available"
    if mps_available():
        return "mps", "no CUDA, Apple MPS is available"
    return "cpu", "neither CUDA nor MPS is available"


@dataclass
class Runtime:
    """Everything the training loop needs to know about where it runs."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    amp_dtype: torch.dtype | None  # autocast dtype, None = no autocast
    use_grad_scaler: bool
    compile: bool
    rank: int
    world_size: int
    local_rank: int
    gpu_name: str | None
    gpu_count: int  # GPUs used by this run (0 on CPU)
    reasons: list[str] = field(default_factory=list)
    compile_mode: str = "default"  # torch.compile mode when compile is on: default | reduce-overhead

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def feature_dtype(self) -> torch.dtype:
        """The dtype embedding features are held in on the device: the towers' compute dtype (bf16/fp16
        under autocast: half the memory, and the first matmul would cast them anyway), else fp32."""
        return self.amp_dtype or torch.float32

    def input_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype features of ``dtype`` take on the device: floats the feature dtype, token ids kept."""
        return self.feature_dtype if dtype.is_floating_point else dtype

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """The GradScaler for this runtime: enabled only where fp16 needs one. Made for the runtime's device
        type, never a fixed "cuda": a cuda scaler on another device disables itself with a warning, so a
        run (or a test) whose runtime asks for a scaler would silently train without one."""
        return torch.amp.GradScaler(self.device.type, enabled=self.use_grad_scaler)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def setup_runtime(device: str = "auto", precision: str = "auto", compile_mode: str = "auto") -> Runtime:
    """Pick device, precision, torch.compile and DDP; log every choice and its reason on rank 0."""
    reasons: list[str] = []
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    if device == "auto":
        device_type, why = auto_device()
        reasons.append(f"device {device_type}: {why} (--device overrides)")
    else:
        device_type = device
        reasons.append(f"device {device_type}: --device {device}")
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError(
                "--device cuda was given but torch sees no CUDA GPU.",
                where="flag --device",
                fix="use --device auto or cpu, or install a CUDA build of torch.",
            )
        if device == "mps" and not mps_available():
            raise UserError(
                "--device mps was given but MPS is not available.",
                where="flag --device",
                fix="use --device auto or cpu.",
            )

    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        gpu_name = torch.cuda.get_device_name(dev)
        gpu_count = world_size  # GPUs this run uses: one per process
        # Native bf16 needs compute capability >= 8.0 (Ampere: A10G, A100, L4, H100). Not
        # torch.cuda.is_bf16_supported(): by default it also says True where bf16 is only emulated (V100, T4).
        bf16_ok = torch.cuda.get_device_capability(dev)[0] >= 8
        # TF32 matmuls on Ampere+ (fp32 parameters, faster matmuls); see torch.set_float32_matmul_precision.
        torch.set_float32_matmul_precision("high")
    else:
        dev = torch.device(device_type)
        gpu_name = "Apple GPU (MPS)" if device_type == "mps" else None
        gpu_count = 1 if device_type == "mps" else 0
        bf16_ok = device_type == "cpu"

    if precision == "auto":
        if device_type == "cuda" and bf16_ok:
            chosen, why = "bf16", f"{gpu_name} supports bf16"
        elif device_type == "cuda":
            chosen, why = "fp16", f"{gpu_name} has no bf16 (e.g. V100, T4): fp16 autocast with a GradScaler"
        else:
            chosen, why = "fp32", f"on {device_type} autocast brings little for small MLPs; fp32 is exact"
        reasons.append(f"precision {chosen}: {why} (--precision overrides)")
    else:
        chosen = precision
        if chosen == "bf16" and not bf16_ok:
            raise UserError(
                f"precision bf16 was asked for, but {gpu_name or device_type} does not support it.",
                where="setting precision",
                fix="use precision fp16 or auto.",
            )
        if chosen == "fp16" and device_type == "cpu":
            raise UserError(
                "precision fp16 is not supported on CPU.",
                where="setting precision",
                fix="use fp32, bf16 or auto on CPU.",
            )
        reasons.append(f"precision {chosen}: asked for")
    amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[chosen]
    use_grad_scaler = chosen == "fp16" and device_type == "cuda"
    if chosen != "fp32":
        reasons.append("the in-batch softmax and the loss are computed in fp32 in every precision")

    if compile_mode == "off":
        use_compile, why = False, "--compile off"
    elif device_type != "cuda":
        use_compile, why = False, f"on {device_type} compiling these small MLPs costs more time than it saves"
    elif not hasattr(torch, "compile") or sys.platform == "win32":
        use_compile, why = False, "torch.compile is not available here"
    elif compile_mode == "reduce-overhead":
        use_compile, why = True, "--compile reduce-overhead: fused kernels replayed as CUDA graphs"
    else:
        use_compile, why = True, "CUDA: fuses the towers' matmul + activation + norm kernels"
    reasons.append(f"torch.compile {'on' if use_compile else 'off'}: {why}")

    if world_size > 1:
        # nccl between CUDA GPUs, gloo on CPU; torchrun sets MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK.
        # https://pytorch.org/docs/stable/distributed.html#backends
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "mps":
            raise UserError(
                "multi-process training is not supported on MPS.",
                where="torchrun --nproc_per_node",
                fix="run a single process on a Mac.",
            )
        dist.init_process_group(backend=backend, device_id=dev if device_type == "cuda" else None)
        rank, world_size = dist.get_rank(), dist.get_world_size()
        reasons.append(
            f"distributed: DDP over {world_size} processes ({backend}), negatives gathered across ranks"
        )
    else:
        reasons.append("distributed: single process (start with torchrun --nproc_per_node=N for DDP)")

    rt = Runtime(
        dev,
        chosen,
        amp_dtype,
        use_grad_scaler,
        use_compile,
        rank,
        world_size,
        local_rank,
        gpu_name,
        gpu_count,
        reasons,
        "reduce-overhead" if compile_mode == "reduce-overhead" and use_compile else "default",
    )
    for line in reasons:
        print0(f"runtime: {line}")
    return rt
