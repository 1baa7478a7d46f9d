"""Script mode: what the script is told of the machine it runs on, computed here and nowhere else.

- ``SPOT_SWEEP_INSTANCE_TYPE``: the EC2 instance type from the instance metadata (``imds.instance_facts``),
  ``local`` off EC2 (spot-sweep local, a laptop).
- ``SPOT_SWEEP_GPU_MODEL``: the CUDA GPU's name as nvidia-smi reports it (e.g. ``NVIDIA A10G``,
  ``Tesla V100-SXM2-16GB``), else torch's ``get_device_name``; empty without CUDA (a CPU, Apple MPS).
- ``SPOT_SWEEP_GPU_MEMORY_GB``: that GPU's memory in GiB, one decimal (nvidia-smi ``memory.total``, else
  torch's ``total_memory``); empty without CUDA.
- ``SPOT_SWEEP_GPUS``: how many CUDA GPUs the job uses: the job's ``gpus``, at most as many as CUDA sees; 0
  without CUDA.
- ``SPOT_SWEEP_DEVICE``: ``cuda``, ``mps`` or ``cpu`` (``two_tower.runtime.auto_device``, the trainer's own
  choice).

A script can then size itself to the machine (the seed's batch size 256 on p3.2xlarge, 512 elsewhere) without
asking IMDS or nvidia-smi itself. torch is imported only here, when a job runs: importing spot_runner never
imports it.
"""

from __future__ import annotations

import shutil
import subprocess

from .runlog import log

NVIDIA_SMI_QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
"""nvidia-smi's CSV query: the name and the total memory in MiB of each GPU, one line per GPU.
@see https://docs.nvidia.com/deploy/nvidia-smi/index.html"""


def _nvidia_smi() -> tuple[str, float] | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=20, check=True)
        name, mib = out.stdout.strip().splitlines()[0].rsplit(",", 1)
        return name.strip(), float(mib) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def script_env(instance_type: str, job_gpus: int) -> dict[str, str]:
    """The environment variables above, as strings."""
    import torch

    from two_tower.runtime import auto_device

    device = auto_device()[0]
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    model, memory = "", ""
    if cuda:
        smi = _nvidia_smi()
        if smi is None:
            props = torch.cuda.get_device_properties(0)
            smi = (props.name, props.total_memory / 2**30)
        model, memory = smi[0], f"{smi[1]:.1f}"
    env = {
        "SPOT_SWEEP_DEVICE": device,
        "SPOT_SWEEP_INSTANCE_TYPE": instance_type,
        "SPOT_SWEEP_GPU_MODEL": model,
        "SPOT_SWEEP_GPU_MEMORY_GB": memory,
        "SPOT_SWEEP_GPUS": str(min(job_gpus, cuda)),
    }
    log("script machine: " + ", ".join(f"{k}={v or '(empty)'}" for k, v in env.items()))
    return env
