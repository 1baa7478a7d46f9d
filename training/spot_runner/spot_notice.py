"""The EC2 spot interruption notice and the Auto Scaling termination of this instance, polled together by the
job runner in both modes (trainer and script).

The poller reads IMDSv2 ``/latest/meta-data/spot/instance-action`` every 5 s by default, as AWS recommends
(``imds.poll_seconds``); the item is absent (404) until EC2 schedules the stop or termination, then holds
``{"action": "terminate"|"stop"|"hibernate", "time": "..."}`` about two minutes ahead. The runner hands the
notice to ``Supervisor.request_stop``, which forwards it to the child as SIGTERM: the trainer checkpoints
and exits 75, and the runner records the notice as the cause of the interruption.
@see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html

In the same round it reads ``autoscaling/target-lifecycle-state`` (``imds.TARGET_LIFECYCLE_PATH``):
``Terminated`` means the group is terminating the instance (a scale-in: an alarm, the budget guard,
``spot-sweep stop``, the job's own self-removal) and the config's termination lifecycle hook holds it in
Terminating:Wait until the bootstrap completes the action, so the job has time to checkpoint and upload.
A spot interruption is EC2's, not the group's: the group replaces the instance only after EC2 interrupted
it, so the hook gives it no extra time; the notice is read first and stays the cause when both are seen.
@see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .imds import TERMINATED, Imds, poll_seconds


class SpotPoller(threading.Thread):
    """Background thread polling the spot interruption notice and the target lifecycle state; started only
    when IMDS answers quickly.

    ``on_notice`` is called once, with ``"spot interruption notice <instance-action JSON>"`` (a
    ``Supervisor.request_stop`` fits); ``on_terminating``, when given, once the target lifecycle state is
    Terminated. The thread ends after either."""

    def __init__(
        self,
        on_notice: Callable[[str], object],
        endpoint: str | None = None,
        interval_s: float | None = None,
        timeout_s: float = 1.0,
        on_terminating: Callable[[], object] | None = None,
    ):
        super().__init__(name="spot-poller", daemon=True)
        self.on_notice = on_notice
        self.on_terminating = on_terminating
        self.imds = Imds(endpoint, timeout_s)
        self.interval_s = poll_seconds() if interval_s is None else interval_s
        self._halt = threading.Event()

    def start_if_on_ec2(self) -> bool:
        """Start polling when the token PUT succeeds within timeout_s (i.e. we run on EC2 or a stand-in)."""
        if not self.imds.connect():
            return False
        self.start()
        return True

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            notice = self.imds.spot_notice()
            if notice:
                self.on_notice(f"spot interruption notice {notice}")
                return
            if self.on_terminating is not None and self.imds.target_lifecycle_state() == TERMINATED:
                self.on_terminating()
                return

    def halt(self) -> None:
        self._halt.set()
