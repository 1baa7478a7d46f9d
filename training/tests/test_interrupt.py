import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from two_tower.interrupt import SpotPoller, StopRequest


class FakeImds(BaseHTTPRequestHandler):
    """Stands in for IMDSv2: a token on PUT /latest/api/token; spot/instance-action 404 until `notice`
    is set."""

    notice: dict | None = None
    seen_tokens: list[str] = []

    def do_PUT(self):
        assert self.path == "/latest/api/token"
        assert self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
        self._reply(200, "token-123")

    def do_GET(self):
        FakeImds.seen_tokens.append(self.headers.get("X-aws-ec2-metadata-token", ""))
        if self.path == "/latest/meta-data/spot/instance-action" and FakeImds.notice:
            self._reply(200, json.dumps(FakeImds.notice))
        else:
            self._reply(404, "Not Found")

    def _reply(self, code, body):
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def imds():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeImds.notice, FakeImds.seen_tokens = None, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_spot_notice_requests_a_stop(imds):
    stop = StopRequest()
    poller = SpotPoller(stop.set, endpoint=imds, interval_s=0.02)
    assert poller.start_if_on_ec2()
    time.sleep(0.1)
    assert not stop.requested
    FakeImds.notice = {"action": "terminate", "time": "2026-11-28T14:00:00Z"}
    deadline = time.monotonic() + 5
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stop.requested and "terminate" in stop.reason
    assert set(FakeImds.seen_tokens) == {"token-123"}


def test_poller_does_not_start_off_ec2():
    poller = SpotPoller(StopRequest().set, endpoint="http://127.0.0.1:9", timeout_s=0.2)
    assert not poller.start_if_on_ec2()
    assert not poller.is_alive()


def test_endpoint_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPOT_SWEEP_IMDS_ENDPOINT", "http://10.0.0.1:8080/")
    assert SpotPoller(StopRequest().set).imds.url == "http://10.0.0.1:8080"


def test_poll_interval_comes_from_the_environment_and_defaults_to_5_seconds(monkeypatch):
    monkeypatch.delenv("SPOT_SWEEP_SPOT_POLL_SECONDS", raising=False)
    assert SpotPoller(StopRequest().set).interval_s == 5.0
    monkeypatch.setenv("SPOT_SWEEP_SPOT_POLL_SECONDS", "0.25")
    assert SpotPoller(StopRequest().set).interval_s == 0.25
    monkeypatch.setenv("SPOT_SWEEP_SPOT_POLL_SECONDS", "soon")
    assert SpotPoller(StopRequest().set).interval_s == 5.0
