"""GPU metrics start when the job's child starts, not before: the idle-GPU alarm must not see the data and
checkpoint downloads (GPU at 0 %) as an idle GPU.

The bootstrap writes the CloudWatch agent's GPU config and hands it over in the environment
(``SPOT_SWEEP_CW_AGENT``: the agent's control script, ``SPOT_SWEEP_GPU_METRICS_CONFIG``: the JSON file);
the runner appends it once, right before the child starts. Without them (local runs, tests) nothing
happens. The idle alarm treats missing data as not breaching, so no metric until then is never "idle".
@see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
"""

from __future__ import annotations

import os
import subprocess

from .runlog import log

AGENT_ENV = "SPOT_SWEEP_CW_AGENT"
CONFIG_ENV = "SPOT_SWEEP_GPU_METRICS_CONFIG"

_started = False


def start_gpu_metrics() -> bool:
    """Append the GPU metrics config to the running agent (once per process); True when it took it."""
    global _started
    agent, config = os.environ.get(AGENT_ENV), os.environ.get(CONFIG_ENV)
    if _started or not agent or not config:
        return False
    _started = True
    try:
        done = subprocess.run(
            [agent, "-a", "append-config", "-m", "ec2", "-s", "-c", f"file:{config}"],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return _refused(str(e))
    if done.returncode != 0:
        return _refused(f"exit {done.returncode}")
    log("GPU metrics: publishing from now on (the idle-GPU alarm is armed)")
    return True


def _refused(why: str) -> bool:
    log(f"warning: the CloudWatch agent did not take the GPU metrics ({why}); the idle-GPU alarm cannot fire")
    return False
