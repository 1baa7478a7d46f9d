"""Test helpers for the job runner, script mode and bootstrap tests.

- ``s3``: a real S3 API server (``moto_server``, started once per test session on 127.0.0.1 and a
  free port) and a fresh bucket per test; AWS_* env points boto3 and child processes at it. Without
  moto_server the tests that need it skip, or fail when env CI is set.
- ``FakeImds``: a local HTTP server standing in for IMDSv2 (token PUT, instance-type,
  instance-life-cycle, instance-id, placement/region, spot/instance-action once ``notice()``
  is called, autoscaling/target-lifecycle-state once ``lifecycle()`` is called or, for a stand-in in
  another process, once it writes the file given as ``lifecycle_file``); child processes find it through
  SPOT_SWEEP_IMDS_ENDPOINT.
- ``job_doc`` / ``local_job`` / ``run_job`` / ``start_job`` / ``start_job_until``: a valid job.json (in a
  local store) and the runner as a subprocess.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parent.parent
NO_IMDS = "http://127.0.0.1:9"  # closed port: "not on EC2", answered at once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_moto: dict[str, object] = {}


def moto_endpoint() -> str:
    """One moto_server per test session (stopped at exit)."""
    if "url" in _moto:
        return str(_moto["url"])
    exe = shutil.which("moto_server")
    if exe is None:
        missing = "moto_server is not on PATH (pip install 'moto[server]')"
        # CI must run every S3 test: a silent skip there would hide a broken setup.
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{missing}; CI is set, so the S3 tests fail rather than skip.", pytrace=False)
        pytest.skip(missing)
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    atexit.register(lambda: (proc.terminate(), proc.wait(10)))
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("moto_server exited at start") from None
            time.sleep(0.1)
    _moto["url"] = url
    return url


class S3Bucket:
    def __init__(self, endpoint: str, name: str):
        import boto3

        self.endpoint = endpoint
        self.name = name
        self.client = boto3.client("s3", endpoint_url=endpoint)
        self.client.create_bucket(Bucket=name)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def get_json(self, key: str) -> dict | None:
        raw = self.get(key)
        return None if raw is None else json.loads(raw)

    def put(self, key: str, data: bytes | str) -> None:
        self.client.put_object(
            Bucket=self.name, Key=key, Body=data.encode() if isinstance(data, str) else data
        )

    def upload_dir(self, directory: Path, prefix: str) -> None:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                self.client.upload_file(str(path), self.name, prefix + path.relative_to(directory).as_posix())


def moto_bucket(mp: pytest.MonkeyPatch, prefix: str) -> S3Bucket:
    """A new bucket in the session's moto_server, with the AWS env of this process (and so of the runners it
    starts) pointed at it: test credentials, a region, no profile."""
    endpoint = moto_endpoint()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        mp.setenv(key, value)
    mp.delenv("AWS_PROFILE", raising=False)
    return S3Bucket(endpoint, f"{prefix}-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3(monkeypatch) -> S3Bucket:
    return moto_bucket(monkeypatch, "test")


class FakeImds:
    """IMDSv2 stand-in: a token is required on every GET, as on a real instance with IMDSv2 enforced."""

    TOKEN = "fake-imds-token"

    LIFECYCLE = "autoscaling/target-lifecycle-state"

    def __init__(self, instance_type: str = "p3.2xlarge", life_cycle: str = "spot", lifecycle_file=None):
        self.lifecycle_file = Path(lifecycle_file) if lifecycle_file else None
        self.meta = {
            "instance-type": instance_type,
            "instance-life-cycle": life_cycle,
            "instance-id": "i-0123456789abcdef0",
            "placement/region": "eu-west-1",
        }
        self.requests: list[str] = []
        kit = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                kit.requests.append("PUT " + self.path)
                if self.path == "/latest/api/token" and self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(200, kit.TOKEN)
                else:
                    self._send(400)

            def do_GET(self):
                kit.requests.append("GET " + self.path)
                if self.headers.get("X-aws-ec2-metadata-token") != kit.TOKEN:
                    self._send(401)
                    return
                key = self.path.removeprefix("/latest/meta-data/")
                if key == kit.LIFECYCLE and kit.lifecycle_file is not None and kit.lifecycle_file.is_file():
                    self._send(200, kit.lifecycle_file.read_text().strip())
                elif key in kit.meta:
                    self._send(200, kit.meta[key])
                else:
                    self._send(404, "Not Found")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notice(self, action: str = "terminate") -> None:
        """Post a spot interruption notice, as EC2 does two minutes before it acts."""
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
        self.meta["spot/instance-action"] = json.dumps({"action": action, "time": when})

    def lifecycle(self, state: str = "Terminated") -> None:
        """Set the Auto Scaling target lifecycle state, as the group does when it begins to terminate the
        instance (a scale-in) while a termination lifecycle hook holds it."""
        self.meta[self.LIFECYCLE] = state

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def imds():
    server = FakeImds()
    yield server
    server.close()


def job_doc(store: str, data: str | None, **overrides) -> dict:
    """A valid job.json (version 1, .ci/CONTRACTS.md) for a tiny CPU run."""
    doc = {
        "version": 1,
        "sweep": "test-sweep",
        "config": "tiny",
        "data": data,
        "store": store,
        "instanceTypes": ["p3.2xlarge"],
        "market": "spot",
        "gpus": 1,
        "maxRuntimeHours": 1,
        "examples": None,
        "train": {
            "folds": 2,
            "epochs": 2,
            "batchSize": 64,
            "learningRate": 0.01,
            "weightDecay": 0.0,
            "precision": "auto",
            "gradAccumulation": 1,
            "seed": 7,
            "temperature": 0.05,
            "logQCorrection": False,
            "evalCandidates": "labeled",
            "hiddenDim": 32,
            "checkpointMinutes": 10,
            "finalModel": True,
        },
        "script": None,
        "retries": {"max": 0, "onExitCodes": []},
        "encoder": None,
    }
    doc.update(overrides)
    if isinstance(doc["script"], dict):  # the keys job.json always has (lib/spec/job.ts fills them in)
        doc["script"] = {**SCRIPT_DEFAULTS, **doc["script"]}
    return doc


SCRIPT_DEFAULTS = {"metric": None, "requirements": None, "launcher": "python"}
"""The script keys a test need not spell out: their defaults, as the spec renders them."""


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TRAINING), env.get("PYTHONPATH")) if p)
    env.setdefault("SPOT_SWEEP_IMDS_ENDPOINT", NO_IMDS)
    # One intra-op thread: on a shared 2-core machine torch's default thread pool oversubscribes the cores and
    # a tiny run takes 15x longer (measured 38 s vs 2.5 s at load 6).
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def job_cmd(job_uri: str, workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "spot_runner.job", "--job", job_uri, "--workdir", str(workdir), *args]


def run_job(
    job_uri: str, workdir: Path, *args: str, env: dict | None = None, timeout: float = 110
) -> subprocess.CompletedProcess:
    return subprocess.run(
        job_cmd(job_uri, workdir, *args),
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=TRAINING,
    )


class DrainedProcess(subprocess.Popen):
    """A child whose output is read as it comes, by a thread: a job that logs more than a pipe holds
    (~64 KB: hundreds of checkpoint lines) must never block on a full pipe while a test waits for it.
    ``communicate()`` returns everything it printed; ``output()`` what it printed so far."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
        self._chunks: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True, name="drain")
        self._reader.start()

    def _drain(self) -> None:
        for line in self.stdout:
            self._chunks.append(line)

    def output(self) -> str:
        return "".join(self._chunks)

    def communicate(self, input=None, timeout=None):  # noqa: A002 - Popen's signature
        self.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.output(), None


def start_job(job_uri: str, workdir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return DrainedProcess(job_cmd(job_uri, workdir, *args), env=child_env(env), cwd=TRAINING)


def local_job(root: Path, data: Path | str, **train) -> tuple[str, Path]:
    """job.json in a local store ``root/store`` (file:// URI), with ``train`` overriding its settings: the
    job's URI and the store directory."""
    store = root / "store"
    store.mkdir(parents=True)
    doc = job_doc(store.as_uri() + "/", str(data))
    doc["train"].update(train)
    (store / "job.json").write_text(json.dumps(doc))
    return str(store / "job.json"), store


def start_job_until(
    job_uri: str,
    workdir: Path,
    text: str,
    what: str,
    *args: str,
    env: dict | None = None,
    timeout: float = 90,
) -> subprocess.Popen:
    """Start the runner and wait until its local train.log shows ``text`` (e.g. a checkpoint line)."""
    proc = start_job(job_uri, workdir, *args, env=env)
    log = workdir / "train.log"
    wait_for(lambda: log.exists() and text in log.read_text(), what, timeout=timeout, proc=proc)
    return proc


def wait_for(predicate, what: str, timeout: float = 60, proc: subprocess.Popen | None = None):
    """Poll until ``predicate()`` returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = (
                proc.output()
                if isinstance(proc, DrainedProcess)
                else (proc.stdout.read() if proc.stdout else "")
            )
            raise AssertionError(f"the job exited ({proc.returncode}) before {what}:\n{out}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# Trainer settings for a job that runs until it is stopped (stop, notice, deadline), checkpointing often.
LONG_TRAIN = {"epochs": 400, "batchSize": 16, "checkpointMinutes": 0.005}
# The runner's spot-notice and lifecycle poll, fast enough for a test.
FAST_POLL = {"SPOT_SWEEP_SPOT_POLL_SECONDS": "0.2"}


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` every 10 ms for up to ``timeout`` s; its last answer (for a poller's own tests,
    where waiting too long is the finding, not a setup failure)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(predicate())


def states(status: dict) -> list[str]:
    return [h["state"] for h in status.get("history", [])]
