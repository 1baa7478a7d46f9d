"""Stop requests: SIGTERM/SIGINT and the EC2 spot interruption notice.

The training loop checks ``requested`` between optimizer steps; when set, it saves a checkpoint and exits
with code 75 (see .ci/CONTRACTS.md). The spot poller reads IMDSv2 ``/latest/meta-data/spot/instance-action``
every 5 s by default, as AWS recommends (``imds.poll_seconds``); the item is absent (404) until EC2 schedules
the stop or termination, then holds ``{"action": "terminate"|"stop"|"hibernate", "time": "..."}`` about two
minutes ahead. The job runner's script mode uses the same poller to stop a user's script.
@see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from .imds import Imds, poll_seconds


class StopRequest:
    """Set by a signal handler or the spot poller; read by the training loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


def install_signal_handlers(stop: StopRequest) -> None:
    """SIGTERM (spot/ASG shutdown, torchrun forwarding) and SIGINT (Ctrl-C) request a checkpoint and stop."""

    def handler(signum: int, _frame: object) -> None:
        stop.set(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class SpotPoller(threading.Thread):
    """Background thread polling the spot interruption notice; started only when IMDS answers quickly.

    ``on_notice`` is called once, with ``"spot interruption notice <instance-action JSON>"`` (a
    ``StopRequest.set`` fits)."""

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
