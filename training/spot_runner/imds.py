"""The EC2 instance metadata service (IMDSv2): the job runner's client (instance facts, spot notice, the
Auto Scaling target lifecycle state).

IMDSv2 takes a session token from ``PUT /latest/api/token`` (header X-aws-ec2-metadata-token-ttl-seconds)
and wants it on every GET in X-aws-ec2-metadata-token; a GET with an expired token answers 401.
@see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html

The endpoint is overridable with env ``SPOT_SWEEP_IMDS_ENDPOINT`` (default http://169.254.169.254) so
tests and local runs can stand in a local server; off EC2 the token PUT fails fast and callers treat
the machine as "local".
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

ENDPOINT_ENV = "SPOT_SWEEP_IMDS_ENDPOINT"
DEFAULT_ENDPOINT = "http://169.254.169.254"
POLL_ENV = "SPOT_SWEEP_SPOT_POLL_SECONDS"
# AWS recommends checking for a spot interruption notice every 5 seconds.
# @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
DEFAULT_POLL_SECONDS = 5.0
TOKEN_TTL_SECONDS = 21600  # the longest IMDSv2 allows (6 h)
SPOT_NOTICE_PATH = "spot/instance-action"
# "When an instance prepares to transition to one of the preceding steady states [InService, Terminated,
# Detached, Standby], Amazon EC2 Auto Scaling updates the value of the instance metadata item
# autoscaling/target-lifecycle-state": Terminated once the group has begun to terminate the instance (a
# scale-in, TerminateInstanceInAutoScalingGroup), while a termination lifecycle hook holds it in
# Terminating:Wait. @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html
TARGET_LIFECYCLE_PATH = "autoscaling/target-lifecycle-state"
TERMINATED = "Terminated"


def endpoint() -> str:
    return (os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


def poll_seconds() -> float:
    """Seconds between spot-notice polls: env SPOT_SWEEP_SPOT_POLL_SECONDS (tests shorten it), else 5."""
    raw = os.environ.get(POLL_ENV)
    if not raw:
        return DEFAULT_POLL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value > 0:
        return value
    print(
        f"warning: {POLL_ENV}={raw!r} is not a number of seconds > 0; "
        f"polling every {DEFAULT_POLL_SECONDS:g} s",
        file=sys.stderr,
    )
    return DEFAULT_POLL_SECONDS


class Imds:
    """IMDSv2 client: fetches a token on first use and again after a 401 (expired token)."""

    def __init__(self, url: str | None = None, timeout_s: float = 1.0):
        self.url = (url or endpoint()).rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None

    def connect(self) -> bool:
        """True when IMDS hands out a token within ``timeout_s``: we run on EC2 (or beside a stand-in)."""
        request = urllib.request.Request(
            self.url + "/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                self._token = response.read().decode().strip()
        except (urllib.error.URLError, OSError, ValueError):
            self._token = None
        return self._token is not None

    def get(self, path: str) -> str | None:
        """The metadata item under /latest/meta-data/, or None when absent or unreachable."""
        if self._token is None and not self.connect():
            return None
        request = urllib.request.Request(
            self.url + "/latest/meta-data/" + path, headers={"X-aws-ec2-metadata-token": str(self._token)}
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

    def spot_notice(self) -> str | None:
        """The instance-action JSON once EC2 has scheduled the interruption, else None (404 until then)."""
        return self.get(SPOT_NOTICE_PATH) or None

    def target_lifecycle_state(self) -> str | None:
        """InService, Terminated, …: the state the Auto Scaling group is moving this instance to; None off a
        group (the item is absent) or when IMDS does not answer."""
        return self.get(TARGET_LIFECYCLE_PATH) or None


def instance_facts() -> dict:
    """instanceType and market ("spot" or "on-demand", from instance-life-cycle), or "local" off EC2."""
    imds = Imds()
    if not imds.connect():
        return {"instanceType": "local", "market": "local"}
    return {
        "instanceType": imds.get("instance-type") or "unknown",
        "market": imds.get("instance-life-cycle") or "unknown",
    }
