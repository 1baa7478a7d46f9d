"""The stops the job runner decides on its own, not on a control.json request: the instance's deadline
(``--deadline``, set by the bootstrap ahead of the SSM step's execution timeout) and a scale-in (the Auto
Scaling group terminating the instance, seen in its metadata by ``spot_notice.SpotPoller``). Each ends the
job like a stop request: the child checkpoints, the runner uploads, status.json says STOPPED with the
reason, ``stoppedBy`` names the cause (names.json ``stopCauses``), and the exit code is the stopped one, so
the bootstrap removes the instance (or, when the group is already terminating it, completes the lifecycle
action) and nothing resumes until a start request.

Why the deadline: at ``timeoutSeconds`` the SSM agent SIGKILLs the step's process group, which holds the
bootstrap and the runner but not the trainer (a session of its own): nothing would upload, remove the
instance or say why, and the trainer would go on billing with status.json at TRAINING.
(killProcess: ``syscall.Kill(-pid, syscall.SIGKILL)``, the step's process group)
@see https://github.com/aws/amazon-ssm-agent/blob/mainline/agent/executers/executers_unix.go
@see https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html (Execution Timed Out)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from contract import STOP_CAUSES


@dataclass(frozen=True)
class OwnStop:
    """A stop the runner decided: ``by`` (a names.json stopCauses value), the STOPPED ``reason`` (a
    sentence), and ``summary``, the short form the log and the SIGTERM note carry."""

    by: str
    reason: str
    summary: str


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Deadline:
    """The time (seconds since the epoch) by which the job must have stopped; None: no deadline (local runs,
    a runner started by hand)."""

    def __init__(self, at: float | None):
        self.at = at
        self._timer: threading.Timer | None = None

    def passed(self) -> bool:
        return self.at is not None and time.time() >= self.at

    def watch(self, on_deadline: Callable[[], object]) -> None:
        """Call ``on_deadline`` once, from a timer thread, when the deadline comes (at once if it passed)."""
        if self.at is None:
            return
        self._timer = threading.Timer(max(0.0, self.at - time.time()), on_deadline)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def stop(self, max_runtime_hours: float) -> OwnStop:
        when = iso(self.at or time.time())
        return OwnStop(
            by=STOP_CAUSES["deadline"],
            reason=(
                f"Stopped at max runtime: the instance's deadline {when} passed. The bootstrap sets it "
                "ahead of the SSM train step's execution timeout (maxRuntimeHours "
                f"{max_runtime_hours:g} in the sweep spec, {max_runtime_hours * 3600:g} s), at which SSM "
                "kills the job without a checkpoint, so that the job checkpoints, uploads and removes its "
                "instance first. Fix: to train longer per instance, raise maxRuntimeHours (at most 48; it "
                "changes job.json, so the job starts over)."
            ),
            summary=f"the max-runtime deadline {when} passed",
        )


def scale_in_stop() -> OwnStop:
    return OwnStop(
        by=STOP_CAUSES["scaleIn"],
        reason=(
            "Stopped by a scale-in: the Auto Scaling group is terminating this instance (its metadata "
            "autoscaling/target-lifecycle-state is Terminated: the idle-GPU or max-runtime alarm, or the "
            "group's desired capacity lowered by hand), and the termination lifecycle hook held it while the "
            "job checkpointed."
        ),
        summary="scale-in: the Auto Scaling group is terminating this instance",
    )
