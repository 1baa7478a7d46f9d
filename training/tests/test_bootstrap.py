"""bootstrap.sh under test: stand-ins for nvidia-smi, aws and the Pythons first on PATH, a local HTTP
server for IMDSv2 (real curl), and a directory standing in for S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from jobkit import TRAINING, FakeImds, imds, wait_for  # noqa: F401 - fixture

BOOTSTRAP = TRAINING / "bootstrap.sh"
JOB_URI = "s3://artifacts/sweeps/s/c/job.json"
CACHE = "s3://artifacts/cache/wheels"

PYTHON_STANDIN = r"""
import json, os, pathlib, shutil, signal, sys, time

HERE = pathlib.Path(__file__)
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as fh:
    gpu_metrics = {k: os.environ.get(k) for k in ("SPOT_SWEEP_CW_AGENT", "SPOT_SWEEP_GPU_METRICS_CONFIG")}
    fh.write(json.dumps({"cmd": "python", "exe": str(HERE), "args": args, "gpuMetrics": gpu_metrics}) + "\n")
venv = HERE.parent.parent if (HERE.parent.parent / "pyvenv.cfg").exists() else None


def torch_state():
    if venv is not None:
        if not (venv / "torch-installed").exists():
            return None
        return ("2.9.0+cu126", int(os.environ.get("FAKE_VENV_CUDA", "1")))
    spec = os.environ.get("FAKE_SYSTEM_TORCH", "none")
    if spec == "none":
        return None
    return ("2.8.0", int(spec.split(":")[1]) if spec.startswith("cuda:") else 0)


# FAKE_PY_VERSIONS, e.g. {"python3": "3.7"}: the version a stand-in of that name reports.
fake_versions = json.loads(os.environ.get("FAKE_PY_VERSIONS", "{}"))
if args[:1] == ["-c"] and "sys.version_info" in args[1] and HERE.name in fake_versions:
    version = tuple(int(p) for p in fake_versions[HERE.name].split("."))
    print("%d.%d" % version[:2])
    sys.exit(version < (3, 10))
elif args[:1] == ["-c"] and "import torch" in args[1]:
    state = torch_state()
    if state is None:
        sys.exit("ModuleNotFoundError: No module named 'torch'")
    print(state[0], state[1])
elif args[:2] == ["-m", "venv"]:
    target = pathlib.Path(args[2])
    (target / "bin").mkdir(parents=True)
    shutil.copy(HERE, target / "bin" / "python")
    (target / "pyvenv.cfg").write_text("home = fake\n")
elif args[:2] == ["-m", "pip"]:
    if "download" in args:
        dest = pathlib.Path(args[args.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "torch-2.9.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")
        (dest / "nvidia_cudnn_cu12-9.1.0-py3-none-manylinux2014_x86_64.whl").write_bytes(b"wheel")
    elif "--no-index" in args:
        links = pathlib.Path(args[args.index("--find-links") + 1])
        if not list(links.glob("torch-*.whl")):
            sys.exit("ERROR: No matching distribution found for torch")
        (venv / "torch-installed").write_text("")
elif args[:2] == ["-m", "spot_runner.job"]:
    if "--fail" in args:
        sys.exit(1)
    if "--stopped" in args:
        sys.exit(76)
    if os.environ.get("FAKE_JOB_SCALED_IN"):  # the group began terminating the instance while the job ran
        pathlib.Path(os.environ["FAKE_LIFECYCLE"]).write_text("Terminated")
    mode = os.environ.get("FAKE_JOB", "exit:0")
    if mode.startswith("wait-term"):  # wait-term[:CODE]: exit CODE (default 75) on SIGTERM
        marker = pathlib.Path(os.environ["FAKE_LOG"]).with_name("runner-started")
        on_term_code = int(mode.split(":")[1]) if ":" in mode else 75

        def on_term(*_):
            marker.with_name("runner-got-term").write_text("")
            sys.exit(on_term_code)

        signal.signal(signal.SIGTERM, on_term)
        marker.write_text("")
        while True:
            time.sleep(0.05)
    sys.exit(int(mode.split(":")[1]))
else:
    os.execv(REAL, [REAL, *args])
"""

AWS_STANDIN = r"""
import json, os, pathlib, shutil, sys

args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps({"cmd": "aws", "args": args}) + "\n")
root = pathlib.Path(os.environ["FAKE_S3"])


def local(uri):
    return root / uri[len("s3://"):] if uri.startswith("s3://") else pathlib.Path(uri)


paths = [a for a in args[2:] if not a.startswith("--")]
if args[:2] == ["s3", "cp"]:
    src, dst = local(paths[0]), local(paths[1])
    if not src.is_file():
        sys.exit(f"fatal error: {paths[0]} does not exist")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
elif args[:2] == ["s3", "sync"]:
    src, dst = local(paths[0]), local(paths[1])
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
elif args[:2] == ["ssm", "get-parameter"]:
    name = args[args.index("--name") + 1]
    value = root / "ssm" / name.lstrip("/")
    if not value.is_file():
        sys.exit(f"An error occurred (ParameterNotFound) when calling the GetParameter operation: {name}")
    sys.stdout.write(value.read_text() + "\n")
elif args[:1] != ["autoscaling"]:
    sys.exit(f"aws stand-in: unexpected {args}")
"""

NVIDIA_STANDIN = r"""
import os, sys

if os.environ.get("FAKE_NVIDIA") == "never":
    sys.exit("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
count = int(os.environ.get("FAKE_GPU_COUNT", "1"))
if "-L" in sys.argv:
    for i in range(count):
        print(f"GPU {i}: Tesla V100-SXM2-16GB (UUID: GPU-{i})")
elif "--query-gpu=compute_cap" in sys.argv:
    for _ in range(count):
        print(os.environ.get("FAKE_COMPUTE_CAP", "7.0"))
"""


CW_AGENT_STANDIN = r"""
import json, os, sys

args = sys.argv[1:]
config = next((a[len("file:"):] for a in args if a.startswith("file:")), None)
with open(os.environ["FAKE_LOG"], "a") as fh:
    body = json.load(open(config)) if config else None
    fh.write(json.dumps({"cmd": "cw-agent", "args": args, "config": body}) + "\n")
"""


class Instance:
    """A fake GPU instance: stand-ins on PATH, a directory for S3, and a call log."""

    def __init__(self, root: Path, imds_url: str, gpus_in_job: int = 1):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.s3 = root / "s3"
        self.log = root / "calls.jsonl"
        self.log.touch()
        for name, body in (
            ("python3", PYTHON_STANDIN),
            ("dlami-python", PYTHON_STANDIN),
            ("aws", AWS_STANDIN),
            ("nvidia-smi", NVIDIA_STANDIN),
            ("cw-agent", CW_AGENT_STANDIN),
        ):
            path = self.bin / name
            path.write_text(f"#!{sys.executable}\nREAL = {sys.executable!r}\n{body}")
            path.chmod(0o755)
        job = self.s3 / "artifacts" / "sweeps" / "s" / "c" / "job.json"
        job.parent.mkdir(parents=True)
        job.write_text(json.dumps({"version": 1, "gpus": gpus_in_job}))
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "FAKE_LOG": str(self.log),
            "FAKE_S3": str(self.s3),
            "SPOT_SWEEP_IMDS_ENDPOINT": imds_url,
            "SPOT_SWEEP_PYTHONS": "dlami-python",
            "SPOT_SWEEP_POLL_SECONDS": "0.1",
            "SPOT_SWEEP_CW_AGENT": str(self.bin / "cw-agent"),
        }

    def args(self, workdir: str = "work", *extra: str) -> list[str]:
        return [
            "bash",
            str(BOOTSTRAP),
            "--job",
            JOB_URI,
            "--code-dir",
            str(TRAINING),
            "--workdir",
            str(self.root / workdir),
            *extra,
        ]

    def run(self, *extra: str, workdir: str = "work", **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.args(workdir, *extra), env={**self.env, **env}, capture_output=True, text=True, timeout=60
        )

    def calls(self, cmd: str | None = None) -> list[list[str]]:
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r["args"] for r in rows if cmd is None or r["cmd"] == cmd]

    def self_removals(self) -> list[list[str]]:
        return [
            a
            for a in self.calls("aws")
            if a[:2] == ["autoscaling", "terminate-instance-in-auto-scaling-group"]
        ]

    def runner_calls(self) -> list[list[str]]:
        return [a for a in self.calls("python") if a[:2] == ["-m", "spot_runner.job"]]


@pytest.fixture
def instance(tmp_path, imds):  # noqa: F811
    return Instance(tmp_path, imds.url)


REMOVAL = [
    "autoscaling",
    "terminate-instance-in-auto-scaling-group",
    "--instance-id",
    "i-0123456789abcdef0",
    "--should-decrement-desired-capacity",
    "--region",
    "eu-west-1",
]


def test_uses_the_dlami_torch_runs_the_job_and_removes_itself_once(instance):
    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1")

    assert done.returncode == 0, done.stdout + done.stderr
    assert instance.runner_calls() == [
        ["-m", "spot_runner.job", "--job", JOB_URI, "--workdir", str(instance.root / "work")]
    ]
    pip = [a for a in instance.calls("python") if a[:2] == ["-m", "pip"]]
    assert pip == [["-m", "pip", "install", "--quiet", "-r", str(TRAINING / "requirements.txt")]]
    assert not any(a[:2] == ["-m", "venv"] for a in instance.calls("python"))
    assert instance.self_removals() == [REMOVAL]
    for phase in ("metadata", "driver", "job", "python", "requirements", "gpus"):
        assert f"phase {phase}: done in" in done.stdout
    assert "torch 2.8.0 sees 1 CUDA device(s)" in done.stdout


def test_hands_the_gpu_metrics_to_the_runner_instead_of_starting_them_before_the_downloads(instance):
    # The runner downloads data and checkpoints first (GPU at 0 %): GPU metrics published from boot would
    # make a long download look idle to the idle-GPU alarm. The bootstrap only writes the agent config and
    # hands it to the runner (spot_runner/gpu_metrics.py appends it when the child starts).
    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1")

    assert done.returncode == 0, done.stdout + done.stderr
    assert instance.calls("cw-agent") == []
    rows = [json.loads(line) for line in instance.log.read_text().splitlines()]
    runner = next(r for r in rows if r["cmd"] == "python" and r["args"][:2] == ["-m", "spot_runner.job"])
    handed = runner["gpuMetrics"]
    assert handed["SPOT_SWEEP_CW_AGENT"] == str(instance.bin / "cw-agent")
    metrics = json.loads(Path(handed["SPOT_SWEEP_GPU_METRICS_CONFIG"]).read_text())["metrics"]
    assert set(metrics) == {"metrics_collected"}  # dimensions come from the user data's base config
    assert "utilization_gpu" in metrics["metrics_collected"]["nvidia_gpu"]["measurement"]


def test_reads_the_job_from_its_ssm_parameter(instance):
    parameter = instance.s3 / "ssm" / "spot-sweep" / "s" / "c" / "job"
    parameter.parent.mkdir(parents=True)
    parameter.write_text(json.dumps({"version": 1, "gpus": 2}))
    args = instance.args()
    args[args.index(JOB_URI)] = "ssm:/spot-sweep/s/c/job"

    done = subprocess.run(
        args, env={**instance.env, "FAKE_SYSTEM_TORCH": "cuda:1"}, capture_output=True, text=True
    )

    # The job's gpus (2) came from the parameter: this instance has 1, so the gpus phase refuses it.
    assert done.returncode == 1, done.stdout
    assert "the job asks for gpus=2 but torch.cuda.device_count() is 1" in done.stdout
    assert ["ssm", "get-parameter", "--name", "/spot-sweep/s/c/job"] == instance.calls("aws")[0][:4]


def test_installs_torch_from_the_wheel_cache_without_downloading(instance):
    cached = instance.s3 / "artifacts" / "cache" / "wheels" / "cu126"
    cached.mkdir(parents=True)
    (cached / "torch-2.9.0+cu126-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")

    done = instance.run("--wheel-cache", CACHE, FAKE_SYSTEM_TORCH="cpu", FAKE_COMPUTE_CAP="7.0")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch installed from the wheel cache" in done.stdout
    assert not any("download" in a for a in instance.calls("python"))
    assert [
        "s3",
        "sync",
        "--only-show-errors",
        f"{CACHE}/cu126/",
        str(instance.root / "work" / "wheels" / "cu126") + "/",
    ] in instance.calls("aws")
    venv_python = str(instance.root / "work" / "venv-cu126" / "bin" / "python")
    runs = [
        r
        for r in map(json.loads, instance.log.read_text().splitlines())
        if r["args"][:2] == ["-m", "spot_runner.job"]
    ]
    assert [r["exe"] for r in runs] == [venv_python]
    assert instance.self_removals() == [REMOVAL]


def test_downloads_the_wheels_once_and_the_next_instance_takes_them_from_the_cache(instance):
    first = instance.run("--wheel-cache", CACHE, FAKE_SYSTEM_TORCH="none", FAKE_COMPUTE_CAP="9.0")

    assert first.returncode == 0, first.stdout + first.stderr
    downloads = [a for a in instance.calls("python") if "download" in a]
    assert len(downloads) == 1 and "https://download.pytorch.org/whl/cu128" in downloads[0]
    assert list((instance.s3 / "artifacts" / "cache" / "wheels" / "cu128").glob("torch-*.whl"))

    instance.log.write_text("")
    second = instance.run(
        "--wheel-cache",
        CACHE,
        workdir="work-of-the-next-instance",
        FAKE_SYSTEM_TORCH="none",
        FAKE_COMPUTE_CAP="9.0",
    )

    assert second.returncode == 0, second.stdout + second.stderr
    assert not any("download" in a for a in instance.calls("python"))
    assert "torch installed from the wheel cache" in second.stdout


def test_fails_when_cuda_sees_fewer_gpus_than_the_job_asks_for(tmp_path, imds):  # noqa: F811
    instance = Instance(tmp_path, imds.url, gpus_in_job=4)

    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1")

    assert done.returncode == 1
    (fail,) = instance.runner_calls()
    message = fail[fail.index("--fail") + 1]
    assert "phase 'gpus'" in message and "gpus=4 but torch.cuda.device_count() is 1" in message
    assert instance.self_removals() == [REMOVAL]


def test_removes_itself_once_when_the_job_fails(instance):
    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:1")

    assert done.returncode == 1
    assert len(instance.runner_calls()) == 1, "the runner records its own failure; no --fail on top"
    assert instance.self_removals() == [REMOVAL]


def test_keeps_the_instance_when_the_job_is_interrupted(instance):
    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:75")

    assert done.returncode == 75
    assert instance.self_removals() == []
    assert "no self-removal" in done.stdout


@pytest.mark.parametrize(
    ("fake_job", "rc", "removed"),
    [
        # A spot notice or scale-in: the runner checkpoints and exits 75; the replacement resumes.
        ("wait-term", 75, False),
        # The same SIGTERM while a stop request stands: the runner ends STOPPED (76); nothing resumes.
        ("wait-term:76", 76, True),
    ],
)
def test_forwards_sigterm_to_the_runner_and_keeps_the_instance_unless_it_stopped(
    instance, fake_job, rc, removed
):
    proc = subprocess.Popen(
        instance.args(),
        env={**instance.env, "FAKE_SYSTEM_TORCH": "cuda:1", "FAKE_JOB": fake_job},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: (instance.root / "runner-started").exists(), "the runner to start", proc=proc)

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == rc, out
    assert (instance.root / "runner-got-term").exists()
    assert instance.self_removals() == ([REMOVAL] if removed else [])


def test_a_second_run_on_the_same_instance_leaves_the_running_job_alone(instance):
    env = {**instance.env, "FAKE_SYSTEM_TORCH": "cuda:1", "FAKE_JOB": "wait-term"}
    first = subprocess.Popen(
        instance.args(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: (instance.root / "runner-started").exists(), "the runner to start", proc=first)

        second = instance.run(FAKE_SYSTEM_TORCH="cuda:1")

        assert second.returncode == 0, second.stdout + second.stderr
        assert "another bootstrap is already running this job" in second.stdout
        assert len(instance.runner_calls()) == 1
        assert instance.self_removals() == []
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 75


def test_gives_up_when_the_nvidia_driver_never_answers(instance):
    done = instance.run("--driver-timeout", "1", FAKE_NVIDIA="never", FAKE_SYSTEM_TORCH="cuda:1")

    assert done.returncode == 1
    (fail,) = instance.runner_calls()
    assert "phase 'driver'" in fail[fail.index("--fail") + 1]
    assert "did not answer within 1 s" in fail[fail.index("--fail") + 1]
    assert instance.self_removals() == [REMOVAL]


def test_refuses_to_start_without_a_job(instance):
    done = subprocess.run(
        ["bash", str(BOOTSTRAP)], env=instance.env, capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 2 and "--job URI" in done.stderr
    assert instance.self_removals() == []


def test_removes_itself_once_when_the_job_was_stopped_on_request(instance):
    # Exit 76: the runner obeyed a stop in control.json and saved the checkpoint; nothing resumes until a
    # start request, so the instance goes (a replacement would only obey the same stop).
    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:76")

    assert done.returncode == 76
    assert instance.self_removals() == [REMOVAL]
    assert "stopped on request" in done.stdout


def test_keeps_the_instance_when_another_runner_holds_the_job(instance):
    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:73")

    assert done.returncode == 73
    assert instance.self_removals() == [], "the runner that holds the job ends it and removes the instance"
    assert "another job runner holds this job" in done.stdout


@pytest.fixture(autouse=True)
def _venv_from_the_stand_in_python(monkeypatch):
    """The torch venv is built from the python3 stand-in, never from a real python3.1x elsewhere on PATH."""
    monkeypatch.setenv("SPOT_SWEEP_VENV_PYTHONS", "python3")


def venv_pythons(instance: Instance, names: list[str]) -> None:
    for name in names:
        (instance.bin / name).write_bytes((instance.bin / "python3").read_bytes())
        (instance.bin / name).chmod(0o755)


def test_builds_the_venv_from_the_first_python_of_at_least_3_10(instance):
    venv_pythons(instance, ["python3.12", "python3.10"])
    names = ("python3.13", "python3", "python3.12", "python3.10")
    candidates = " ".join(str(instance.bin / n) for n in names)

    done = instance.run(
        FAKE_SYSTEM_TORCH="none",
        FAKE_COMPUTE_CAP="7.0",
        SPOT_SWEEP_VENV_PYTHONS=candidates,
        FAKE_PY_VERSIONS=json.dumps({"python3": "3.7", "python3.12": "3.12", "python3.10": "3.10"}),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    rows = map(json.loads, instance.log.read_text().splitlines())
    venvs = [r for r in rows if r["args"][:2] == ["-m", "venv"]]
    assert [r["exe"] for r in venvs] == [str(instance.bin / "python3.12")]
    assert f"building the venv with {instance.bin / 'python3.12'} (Python 3.12)" in done.stdout


def test_fails_when_no_python_of_at_least_3_10_is_there_to_build_the_venv(instance):
    venv_pythons(instance, ["python3.9"])
    missing, old, older = (str(instance.bin / n) for n in ("python3.11", "python3", "python3.9"))

    done = instance.run(
        FAKE_SYSTEM_TORCH="none",
        FAKE_COMPUTE_CAP="7.0",
        SPOT_SWEEP_VENV_PYTHONS=f"{missing} {old} {older}",
        FAKE_PY_VERSIONS=json.dumps({"python3": "3.7", "python3.9": "3.9"}),
    )

    assert done.returncode != 0
    message = (
        f"no Python >= 3.10 to build the torch venv from (tried {missing} {old} {older};"
        f" found: {old} (3.7) {older} (3.9))"
    )
    assert message in done.stdout
    assert "name one in SPOT_SWEEP_VENV_PYTHONS" in done.stdout
    assert not [a for a in instance.calls("python") if a[:2] == ["-m", "venv"]]
    # The job never ran; its status.json records why (FAILED, with the phase and this message).
    [recorded] = instance.runner_calls()
    failure = recorded[recorded.index("--fail") + 1]
    assert failure.startswith("Instance bootstrap: bootstrap failed in phase 'python'")
    assert message in failure
    assert instance.self_removals() == [REMOVAL]


# the deadline and the termination lifecycle hook ------------------------------------------------------

LIFECYCLE_STANDIN = r"""
# Like the group: TerminateInstanceInAutoScalingGroup moves the instance to Terminating:Wait (the hook holds
# it), which its metadata shows as target lifecycle state Terminated.
if args[:2] == ["autoscaling", "terminate-instance-in-auto-scaling-group"]:
    pathlib.Path(os.environ["FAKE_LIFECYCLE"]).write_text("Terminated")
"""


class GroupInstance(Instance):
    """An instance of the Auto Scaling group SpotSweep-s-c: its metadata has a target lifecycle state (the
    file FAKE_LIFECYCLE, InService at first) that self-removal turns to Terminated, and its job.json names
    the sweep and the config."""

    def __init__(self, root: Path, imds: FakeImds, state: str = "InService"):  # noqa: F811
        super().__init__(root, imds.url)
        self.lifecycle = imds.lifecycle_file
        self.lifecycle.write_text(state)
        aws = self.bin / "aws"
        aws.write_text(aws.read_text() + LIFECYCLE_STANDIN)
        job = self.s3 / "artifacts" / "sweeps" / "s" / "c" / "job.json"
        job.write_text(json.dumps({"version": 1, "gpus": 1, "sweep": "s", "config": "c"}))
        self.env["FAKE_LIFECYCLE"] = str(self.lifecycle)

    def completions(self) -> list[list[str]]:
        return [a for a in self.calls("aws") if a[:2] == ["autoscaling", "complete-lifecycle-action"]]


@pytest.fixture
def group_imds(tmp_path):
    server = FakeImds(lifecycle_file=tmp_path / "target-lifecycle-state")
    yield server
    server.close()


def completion() -> list[str]:
    from contract import NAMES, fill

    return [
        "autoscaling",
        "complete-lifecycle-action",
        "--lifecycle-hook-name",
        NAMES["lifecycleHooks"]["termination"],
        "--auto-scaling-group-name",
        fill(NAMES["groupName"], sweep="s", config="c"),
        "--instance-id",
        "i-0123456789abcdef0",
        "--lifecycle-action-result",
        "CONTINUE",
        "--region",
        "eu-west-1",
    ]


@pytest.mark.parametrize(
    ("timeout", "margin_env", "margin"),
    [
        ("7200", None, 600),  # 10 minutes to checkpoint, upload and remove the instance
        ("1200", None, 300),  # a short maxRuntimeHours: a quarter of it
        ("1000", "100", 100),  # SPOT_SWEEP_DEADLINE_MARGIN_SECONDS
    ],
)
def test_hands_the_runner_a_deadline_ahead_of_the_ssm_timeout_and_removes_the_instance_stopped_there(
    instance, timeout, margin_env, margin
):
    import time

    env = {"SPOT_SWEEP_DEADLINE_MARGIN_SECONDS": margin_env} if margin_env else {}
    started = time.time()
    # Exit 76: the runner stopped the job at its deadline (checkpoint uploaded, STOPPED at max runtime).
    done = instance.run("--deadline-seconds", timeout, FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:76", **env)

    assert done.returncode == 76, done.stdout + done.stderr
    (runner,) = instance.runner_calls()
    deadline = float(runner[runner.index("--deadline") + 1])
    assert started + int(timeout) - margin - 1 <= deadline <= time.time() + int(timeout) - margin
    assert f"{margin} s before the SSM step's execution timeout of {timeout} s" in done.stdout
    assert instance.self_removals() == [REMOVAL]


def test_fails_when_the_deadline_is_not_a_number_of_seconds(instance):
    done = instance.run("--deadline-seconds", "4h", FAKE_SYSTEM_TORCH="cuda:1")

    assert (
        done.returncode == 2 and "--deadline-seconds '4h'" in done.stderr and "whole seconds" in done.stderr
    )
    assert instance.runner_calls() == [] and instance.self_removals() == []


def test_completes_the_lifecycle_action_after_removing_itself_so_termination_does_not_wait(
    tmp_path, group_imds
):
    instance = GroupInstance(tmp_path, group_imds)

    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:0")

    assert done.returncode == 0, done.stdout + done.stderr
    calls = instance.calls("aws")
    assert instance.self_removals() == [REMOVAL] and instance.completions() == [completion()]
    assert calls.index(REMOVAL) < calls.index(completion()), "completed only once the removal began"


@pytest.mark.parametrize("rc", [76, 75])
def test_a_scale_in_completes_the_lifecycle_action_once_the_job_stopped_and_never_removes_again(
    tmp_path, group_imds, rc
):
    # The group is terminating the instance (an alarm scaled it in; the hook holds it): the runner saw it,
    # checkpointed and stopped (76), or was interrupted (75). The bootstrap lets the termination go on.
    instance = GroupInstance(tmp_path, group_imds)

    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB=f"exit:{rc}", FAKE_JOB_SCALED_IN="1")

    assert done.returncode == rc, done.stdout + done.stderr
    assert instance.self_removals() == []
    assert instance.completions() == [completion()]


def test_a_scale_in_during_setup_stops_before_the_job_records_stopped_and_completes_the_action(
    tmp_path, group_imds
):
    # An alarm or spot-sweep stop scaled the group in while the instance was still setting up: the runner is
    # not polling yet, so the bootstrap sees it at the start of the next phase, records STOPPED and lets the
    # termination go on, instead of training on an instance its group is removing.
    instance = GroupInstance(tmp_path, group_imds, state="Terminated")

    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:0")

    assert done.returncode == 76, done.stdout + done.stderr
    recorded = [a for a in instance.runner_calls() if "--stopped" in a]
    assert len(recorded) == 1 and "a scale-in" in recorded[0][-1] and "'job' phase" in recorded[0][-1]
    assert not [a for a in instance.runner_calls() if "--workdir" in a], "no job was started"
    assert instance.self_removals() == [] and instance.completions() == [completion()]


def test_retries_completing_the_lifecycle_action_until_the_group_has_one_to_complete(tmp_path, group_imds):
    # The metadata may read Terminated a moment before the action exists: the first call fails, a later one
    # completes it, so termination does not wait for the hook's heartbeat.
    instance = GroupInstance(tmp_path, group_imds)
    aws = instance.bin / "aws"
    aws.write_text(
        aws.read_text()
        + """
if args[:2] == ["autoscaling", "complete-lifecycle-action"]:
    tries = pathlib.Path(os.environ["FAKE_LOG"]).with_name("completion-tries")
    n = int(tries.read_text()) + 1 if tries.exists() else 1
    tries.write_text(str(n))
    if n < 3:
        sys.exit("An error occurred (ValidationError): No active Lifecycle Action found")
"""
    )

    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:0", SPOT_SWEEP_POLL_SECONDS="0")

    assert done.returncode == 0, done.stdout + done.stderr
    assert instance.completions() == [completion()] * 3


def test_does_not_complete_a_lifecycle_action_when_the_instance_is_kept(tmp_path, group_imds):
    instance = GroupInstance(tmp_path, group_imds)

    done = instance.run(FAKE_SYSTEM_TORCH="cuda:1", FAKE_JOB="exit:75")  # a spot notice: the instance stays

    assert done.returncode == 75
    assert instance.self_removals() == [] and instance.completions() == []
