"""Stop requests: SIGTERM/SIGINT and the EC2 spot interruption notice.

The training loop checks ``requested`` between optimizer steps; when set, it saves a checkpoint and exits
with code 75 (see .ci/CONTRACTS.md). The spot poller reads IMDSv2 ``/latest/meta-data/spot/instance-action``
every 5 s, as AWS recommends; the item is absent (404) until EC2 schedules the stop or termination, then
holds ``{"action": "terminate"|"stop"|"hibernate", "time": "..."}`` about two minutes ahead.
@see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
@see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html (IMDSv2:
PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds, then GET with X-aws-ec2-metadata-token)
"""

from __future__ import annotations

import os
import signal
import threading
import urllib.error
import urllib.request

EXIT_INTERRUPTED = 75
IMDS_ENV = "SPOT_SWEEP_IMDS_ENDPOINT"
IMDS_DEFAULT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600


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
    """Background thread polling the spot interruption notice; started only when IMDS answers quickly."""

    def __init__(
        self, stop: StopRequest, endpoint: str | None = None, interval_s: float = 5.0, timeout_s: float = 1.0
    ):
        super().__init__(name="spot-poller", daemon=True)
        self.stop_request = stop
        self.endpoint = (endpoint or os.environ.get(IMDS_ENV) or IMDS_DEFAULT).rstrip("/")
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._halt = threading.Event()
        self._token: str | None = None

    def fetch_token(self) -> str | None:
        request = urllib.request.Request(
            f"{self.endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read().decode().strip()
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def check_once(self) -> str | None:
        """The instance-action JSON when a notice is posted, else None."""
        if self._token is None:
            self._token = self.fetch_token()
            if self._token is None:
                return None
        request = urllib.request.Request(
            f"{self.endpoint}/latest/meta-data/spot/instance-action",
            headers={"X-aws-ec2-metadata-token": self._token},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read().decode().strip()
        except urllib.error.HTTPError as err:
            if err.code == 401:  # token expired: fetch a new one next time
                self._token = None
            return None
        except (urllib.error.URLError, OSError):
            return None

    def start_if_on_ec2(self) -> bool:
        """Start polling when the token PUT succeeds within timeout_s (i.e. we run on EC2 or a stand-in)."""
        self._token = self.fetch_token()
        if self._token is None:
            return False
        self.start()
        return True

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            notice = self.check_once()
            if notice:
                self.stop_request.set(f"spot interruption notice {notice}")
                return

    def halt(self) -> None:
        self._halt.set()
