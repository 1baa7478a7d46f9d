"""Stop requests: SIGTERM and SIGINT.

The training loop checks ``requested`` between optimizer steps; when set, it saves a checkpoint and exits
with code 75 (see .ci/CONTRACTS.md). The trainer does not poll the EC2 spot interruption notice itself: the
job runner does (``spot_runner.spot_notice``) and forwards it as SIGTERM, as does torchrun to its workers.
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Set by a signal handler; read by the training loop."""

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
    """SIGTERM (the job runner's forwarded stop or spot notice, torchrun forwarding, a shutdown) and SIGINT
    (Ctrl-C) request a checkpoint and stop."""

    def handler(signum: int, _frame: object) -> None:
        stop.set(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
