"""The EC2 spot interruption notice, polled by the job runner in both modes (trainer and script).

The poller reads IMDSv2 ``/latest/meta-data/spot/instance-action`` every 5 s by default, as AWS recommends
(``imds.poll_seconds``); the item is absent (404) until EC2 schedules the stop or termination, then holds
``{"action": "terminate"|"stop"|"hibernate", "time": "..."}`` about two minutes ahead. The runner hands the
notice to ``Supervisor.request_stop``, which forwards it to the child as SIGTERM: the trainer checkpoints
and exits 75, and the runner records the notice as the cause of the interruption.
@see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .imds import Imds, poll_seconds


class SpotPoller(threading.Thread):
    """Background thread polling the spot interruption notice; started only when IMDS answers quickly.

    ``on_notice`` is called once, with ``"spot interruption notice <instance-action JSON>"`` (a
    ``Supervisor.request_stop`` fits)."""

    def __init__(
        self,
        on_notice: Callable[[str], object],
        endpoint: str | None = None,
        interval_s: float | None = None,
        timeout_s: float = 1.0,
    ):
        super().__init__(name="spot-poller", daemon=True)
        self.on_notice = on_notice
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

    def halt(self) -> None:
        self._halt.set()
