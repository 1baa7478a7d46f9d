"""Script mode: the user's own MPS-style script, patched to the job's device, run and collected."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import tarfile
import zipfile
from pathlib import Path

import pytest
from jobkit import FakeImds, imds, job_doc, run_job, s3, start_job, states, wait_for  # noqa: F401 - fixtures

MPS_SCRIPT = """\
import json, os, sys
import torch

device = 'mps'
if torch.backends.mps.is_available():
    print("using Apple GPU")
x = torch.arange(4.0, device=device)
os.makedirs("results", exist_ok=True)
with open(os.path.join("results", "config_o.json"), "w") as fh:
    json.dump({"ndcg10": 0.4482, "device": str(x.device), "args": sys.argv[1:], "sum": float(x.sum())}, fh)
print("trained on", x.device)
"""

PLAIN_SCRIPT = """\
import json, os, sys

os.makedirs("results", exist_ok=True)
with open(os.path.join("results", "run.json"), "w") as fh:
    json.dump({"args": sys.argv[1:]}, fh)
"""

PATCHES = [
    {
        "file": "models/evaluate.py",
        "find": "device = 'mps'",
        "replace": "device = os.environ['SPOT_SWEEP_DEVICE']",
    },
    {
        "file": "models/evaluate.py",
        "find": "torch.backends.mps.is_available()",
        "replace": "torch.cuda.is_available()",
    },
]


def make_code(root: Path, script: str = MPS_SCRIPT) -> Path:
    code = root / "usercode"
    (code / "models").mkdir(parents=True)
    (code / "models" / "evaluate.py").write_text(script)
    return code


def script_job(tmp_path: Path, code: str, store: str, **script) -> Path:
    spec = {
        "code": code,
        "entrypoint": "models/evaluate.py",
        "args": ["--fold", "all"],
        "patches": PATCHES,
        "results": "results/*.json",
    }
    spec.update(script)
    job = tmp_path / "store" / "job.json"
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(json.dumps(job_doc(store, None, script=spec)))
    return job


def test_patched_mps_script_runs_on_cpu_and_its_results_are_collected(tmp_path):
    code = make_code(tmp_path)
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/")

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0, done.stderr
    collected = json.loads((store / "results" / "results" / "config_o.json").read_text())
    assert collected["device"] == "cpu" and collected["args"] == ["--fold", "all"]
    results = json.loads((store / "results.json").read_text())
    assert results["mode"] == "script" and results["results"]["ndcg10"] == 0.4482
    assert results["files"] == ["results/config_o.json"]
    status = json.loads((store / "status.json").read_text())
    # When the job ended (History lists moved results by it), as the runner's clock read it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", results["job"]["finishedAt"])
    # setup: test_setup_times
    assert {k: v for k, v in results["job"].items() if k not in ("setup", "finishedAt")} == {
        "sweep": "test-sweep",
        "config": "tiny",
        "instanceType": "local",
        "market": "local",
        "attempts": 1,
        "interruptions": 0,
        "jobDigest": status["jobDigest"],
    }
    log = (store / "train.log").read_text()
    assert "patch 0: models/evaluate.py: replaced 1 occurrence(s)" in log and "trained on cpu" in log
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "SUCCEEDED"
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "SUCCEEDED"]
    assert "device = 'mps'" in (code / "models" / "evaluate.py").read_text(), (
        "the user's own copy is not patched"
    )


def test_script_from_a_zip_in_s3_runs_and_its_results_land_in_the_bucket(tmp_path, s3):  # noqa: F811
    code = make_code(tmp_path)
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(code / "models" / "evaluate.py", "models/evaluate.py")
    s3.put("code/code.zip", archive.read_bytes())
    spec = {
        "code": s3.uri("code/code.zip"),
        "entrypoint": "models/evaluate.py",
        "args": [],
        "patches": PATCHES,
        "results": "results/*.json",
    }
    s3.put("sweeps/s/c/job.json", json.dumps(job_doc(s3.uri("sweeps/s/c/"), None, script=spec)))

    done = run_job(s3.uri("sweeps/s/c/job.json"), tmp_path / "work")

    assert done.returncode == 0, done.stderr
    assert s3.get_json("sweeps/s/c/results/results/config_o.json")["device"] == "cpu"
    assert s3.get_json("sweeps/s/c/status.json")["state"] == "SUCCEEDED"
    assert b"trained on cpu" in s3.get("sweeps/s/c/train.log")


def test_fails_when_a_patch_matches_nothing_naming_the_patch(tmp_path):
    code = make_code(tmp_path, MPS_SCRIPT.replace("device = 'mps'", 'device = "mps"'))
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/")

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2
    assert "script.patches[0] (file 'models/evaluate.py', find \"device = 'mps'\")" in done.stderr
    assert "matches nothing" in done.stderr and "Traceback" not in done.stderr
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED" and "script.patches[0]" in status["message"]
    assert not (store / "results.json").exists()
    assert "trained on" not in (store / "train.log").read_text(), "the script must not run unpatched"


def test_fails_when_a_patched_file_is_missing(tmp_path):
    code = make_code(tmp_path)
    store = tmp_path / "store"
    bad = [*PATCHES, {"file": "models/other.py", "find": "x", "replace": "y"}]
    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=bad)

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2
    assert "script.patches[2] (file 'models/other.py'" in done.stderr and "does not exist" in done.stderr


def test_fails_when_the_results_glob_matches_nothing(tmp_path):
    code = make_code(tmp_path, PLAIN_SCRIPT)
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=[], results="out/*.csv")

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 1
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED" and "'out/*.csv' matched no file" in status["message"]
    assert not (store / "results.json").exists()


def test_fails_when_the_script_crashes_with_its_last_lines_in_the_message(tmp_path):
    code = make_code(tmp_path, "print('loading data')\nraise SystemExit('CUDA out of memory')\n")
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=[])

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 1
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED" and "exited with code 1" in status["message"]
    assert "CUDA out of memory" in status["message"]


def test_spot_notice_stops_the_script_and_marks_the_attempt_interrupted(tmp_path, imds):  # noqa: F811
    code = make_code(
        tmp_path, "import time\nprint('epoch 1', flush=True)\nwhile True:\n    time.sleep(0.05)\n"
    )
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=[])
    proc = start_job(
        str(job),
        tmp_path / "work",
        "--sync-seconds",
        "0.5",
        env={"SPOT_SWEEP_IMDS_ENDPOINT": imds.url, "SPOT_SWEEP_SPOT_POLL_SECONDS": "0.2"},
    )
    wait_for(
        lambda: "epoch 1" in (store / "train.log").read_text() if (store / "train.log").exists() else False,
        "the script's first log line in the store",
        proc=proc,
    )

    imds.notice()
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 75, out
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "PENDING" and status["interruptions"] == 1
    assert "spot interruption notice" in status["message"]
    assert status["instanceType"] == "p3.2xlarge" and status["market"] == "spot"
    assert not (store / "results.json").exists()


def test_ctrl_c_stops_the_job_on_purpose(tmp_path):
    code = make_code(
        tmp_path, "import time\nprint('epoch 1', flush=True)\nwhile True:\n    time.sleep(0.05)\n"
    )
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=[])
    proc = start_job(str(job), tmp_path / "work", "--sync-seconds", "0.5")
    wait_for(
        lambda: (
            "epoch 1" in (tmp_path / "work" / "train.log").read_text()
            if (tmp_path / "work" / "train.log").exists()
            else False
        ),
        "the script to start",
        proc=proc,
    )

    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == 75, out
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "STOPPED" and "interrupted by SIGINT" in status["message"]
    assert states(status) == ["PENDING", "BOOTSTRAPPING", "TRAINING", "STOPPED"]


def test_a_changed_job_runs_again_even_after_success(tmp_path):
    code = make_code(tmp_path, PLAIN_SCRIPT)
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=[])
    assert run_job(str(job), tmp_path / "work").returncode == 0

    job = script_job(tmp_path, str(code), store.as_uri() + "/", patches=[], args=["--fold", "3"])
    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0 and "job.json changed since the last attempt" in done.stderr
    assert json.loads((store / "results.json").read_text())["results"]["args"] == ["--fold", "3"]
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "SUCCEEDED" and status["attempts"] == 1
    log = (store / "train.log").read_text()
    assert log.count("=== attempt 1 on local (local)") == 2, "one log tells every attempt"


def test_the_default_results_glob_collects_files_in_subfolders(tmp_path):
    from spot_runner.user_script import ScriptSpec, collect_results

    (tmp_path / "results" / "fold-1").mkdir(parents=True)
    (tmp_path / "results" / "summary.json").write_text("{}")
    (tmp_path / "results" / "fold-1" / "metrics.json").write_text("{}")
    spec = ScriptSpec(code=str(tmp_path), entrypoint="train.py", args=(), patches=(), results="results/**")

    found = [p.relative_to(tmp_path).as_posix() for p in collect_results(spec, tmp_path)]

    assert found == ["results/fold-1/metrics.json", "results/summary.json"]


def test_fails_when_a_script_path_leaves_the_code_directory_naming_each_field(tmp_path):
    code = make_code(tmp_path)
    store = tmp_path / "store"
    job = script_job(
        tmp_path,
        str(code),
        store.as_uri() + "/",
        entrypoint="../outside.py",
        results="/etc/*",
        patches=[{"file": "models/../../x.py", "find": "a", "replace": "b"}],
    )
    (tmp_path / "outside.py").write_text("open('ran-outside', 'w').write('')\n")

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 2, done.stderr
    for field in ("script.entrypoint", "script.results", "script.patches[0].file"):
        assert f"`{field}` must be a path relative to the code root, without `..`" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "ran-outside").exists()
    assert json.loads((store / "status.json").read_text())["state"] == "FAILED"


def test_a_symlink_in_the_code_cannot_smuggle_files_from_outside_into_the_results(tmp_path):
    from spot_runner.user_script import ScriptSpec, collect_results

    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    code = tmp_path / "code"
    (code / "results").mkdir(parents=True)
    (code / "results" / "ok.json").write_text("{}")
    (code / "results" / "leak.json").symlink_to(secret)
    spec = ScriptSpec(code=str(code), entrypoint="train.py", args=(), patches=(), results="results/*")

    assert [p.name for p in collect_results(spec, code)] == ["ok.json"]


def _alive(pid: int) -> bool:
    """Running (not merely a zombie waiting to be reaped by whoever adopted it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_no_process_the_script_started_outlives_the_job(tmp_path):
    code = tmp_path / "code"
    (code / "results").mkdir(parents=True)
    (code / "train.py").write_text(
        "import os, subprocess, sys\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'],\n"
        "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "open(os.path.join(here, 'child.pid'), 'w').write(str(child.pid))\n"
        "open(os.path.join(here, 'results', 'r.json'), 'w').write('{}')\n"
    )
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/", entrypoint="train.py", patches=[], args=[])

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0, done.stderr
    pid = int((tmp_path / "work" / "code" / "child.pid").read_text())
    assert not _alive(pid), "the script's background process was left running"
    assert "killed 1 process(es) the job left running" in done.stderr


# What the code directory may hold: loops, odd files, archives that reach out (issue 9) ----------------------


def refused(done, store: Path, code: int, *needles: str) -> str:
    """The job ended FAILED with ``code``, one sentence holding ``needles`` and no traceback: the sentence."""
    assert done.returncode == code, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    status = json.loads((store / "status.json").read_text())
    assert status["state"] == "FAILED", status
    for needle in needles:
        assert needle in status["message"], (needle, status["message"])
    assert "Fix:" in status["message"] and not (store / "results.json").exists()
    return status["message"]


def plain_code(tmp_path: Path) -> Path:
    code = tmp_path / "usercode"
    code.mkdir()
    (code / "train.py").write_text(PLAIN_SCRIPT)
    return code


def plain_job(tmp_path: Path, code: str, **script) -> tuple[Path, Path]:
    store = tmp_path / "store"
    spec = {"entrypoint": "train.py", "patches": [], "args": [], "results": "results/**", **script}
    return script_job(tmp_path, code, store.as_uri() + "/", **spec), store


LOOPS = {
    "two links to each other": (("a", "b"), ("b", "a")),
    "a directory linking to its parent": (("models/up", ".."),),
    "a directory linking to itself": (("models/self", "."),),
}


@pytest.mark.parametrize("loop", LOOPS)
def test_fails_when_the_code_holds_a_symlink_loop_naming_it(tmp_path, loop):
    code = plain_code(tmp_path)
    (code / "models").mkdir()
    for link, target in LOOPS[loop]:
        (code / link).symlink_to(target)
    job, store = plain_job(tmp_path, str(code))

    done = run_job(str(job), tmp_path / "work", timeout=60)

    message = refused(done, store, 2, "script.code", "symlink loop")
    assert any(f"{link!r} in {code}" in message for link, _ in LOOPS[loop]), message
    assert message.count(". Fix:") == 1


@pytest.mark.parametrize("loop", ["a directory linking to its parent", "two links to each other"])
def test_fails_when_the_script_makes_a_symlink_loop_where_its_results_are_collected(tmp_path, loop):
    code = plain_code(tmp_path)
    links = {"a directory linking to its parent": "os.symlink('..', 'results/up')"}.get(
        loop, "os.symlink('b', 'results/a'); os.symlink('a', 'results/b')"
    )
    (code / "train.py").write_text(PLAIN_SCRIPT + links + "\n")
    job, store = plain_job(tmp_path, str(code))

    done = run_job(str(job), tmp_path / "work", timeout=60)

    message = refused(done, store, 2, "script.results", "symlink loop")
    assert "'results/up'" in message or "'results/a'" in message or "'results/b'" in message, message


def test_fails_when_a_patched_file_is_not_utf8_naming_the_patch_and_the_file(tmp_path):
    code = make_code(tmp_path)
    (code / "models" / "evaluate.py").write_bytes(MPS_SCRIPT.encode() + b"# caf\xe9\n")  # Latin-1
    store = tmp_path / "store"
    job = script_job(tmp_path, str(code), store.as_uri() + "/")

    done = run_job(str(job), tmp_path / "work")

    refused(done, store, 2, "script.patches[0]", "models/evaluate.py", "not UTF-8")


def test_fails_when_the_code_holds_a_file_that_cannot_be_copied_naming_it(tmp_path):
    code = plain_code(tmp_path)
    os.mkfifo(code / "events.pipe")  # a named pipe: copying it would read it forever
    job, store = plain_job(tmp_path, str(code))

    done = run_job(str(job), tmp_path / "work", timeout=60)

    refused(done, store, 2, "script.code", "events.pipe", "cannot be copied")


def test_fails_when_the_script_removes_its_code_directory(tmp_path):
    code = plain_code(tmp_path)
    (code / "train.py").write_text("import os, shutil\nshutil.rmtree(os.getcwd())\n")
    job, store = plain_job(tmp_path, str(code))

    done = run_job(str(job), tmp_path / "work")

    refused(done, store, 1, "script.results", "code directory", "no longer exists")


def test_a_broken_symlink_in_the_code_is_left_out_as_a_missing_file(tmp_path):
    code = plain_code(tmp_path)
    (code / ".#train.py").symlink_to("root@host.1234")  # an editor's lock file: a link to nothing
    job, store = plain_job(tmp_path, str(code))

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0, done.stderr[-3000:]


def zip_with(path: Path, *entries: tuple[str, str | bytes, str]) -> Path:
    """A zip of ``(name, content, kind)`` entries, kind "file" or "symlink" (content: the link's target), as
    `zip -r -y` stores a symlink."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.py", PLAIN_SCRIPT)
        for name, content, kind in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = ((0o120777 if kind == "symlink" else 0o100644) << 16) | 0
            info.create_system = 3  # Unix: the mode bits above count
            zf.writestr(info, content)
    return path


ARCHIVE_ESCAPES = {
    "a `..` name": ("../outside.py", "x = 1\n", "file"),
    "an absolute name": ("/tmp/spot-sweep-absolute.py", "x = 1\n", "file"),
    "a symlink to an absolute path": ("etc", "/etc", "symlink"),
    "a symlink out through `..`": ("models/data", "../../outside", "symlink"),
}


@pytest.mark.parametrize("entry", ARCHIVE_ESCAPES)
def test_fails_when_a_zip_entry_leads_outside_the_code_directory_naming_it(tmp_path, entry):
    archive = zip_with(tmp_path / "code.zip", ARCHIVE_ESCAPES[entry])
    job, store = plain_job(tmp_path, str(archive))

    done = run_job(str(job), tmp_path / "work")

    refused(done, store, 2, "script.code", ARCHIVE_ESCAPES[entry][0], "outside the code directory")
    assert not (tmp_path / "work" / "outside.py").exists() and not (tmp_path / "outside.py").exists()


def test_a_symlink_inside_a_zip_stays_a_symlink(tmp_path):
    archive = zip_with(
        tmp_path / "code.zip", ("src/run.py", PLAIN_SCRIPT, "file"), ("run.py", "src/run.py", "symlink")
    )
    job, store = plain_job(tmp_path, str(archive), entrypoint="run.py")

    done = run_job(str(job), tmp_path / "work")

    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "work" / "code" / "run.py").is_symlink()


def test_fails_when_the_code_is_a_tar_archive_saying_only_a_zip_is_unpacked(tmp_path):
    code = plain_code(tmp_path)
    archive = tmp_path / "code.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(code / "train.py", "train.py")
    job, store = plain_job(tmp_path, str(archive))

    done = run_job(str(job), tmp_path / "work")

    refused(done, store, 2, "script.code", "code.tar.gz", "not a directory or a .zip")


GLOBS = ["results/**", "results/*.json", "**/*.json", "results/*/metrics.json", "*.txt", "results/.hidden/*"]
GLOBS += ["results", "results/summary.json", "results/**/*.json", "./results/*.json", "res*/**"]
GLOBS += ["results/[fs]*", "results/.*"]


@pytest.mark.parametrize("pattern", GLOBS)
def test_the_results_glob_matches_what_glob_matches(tmp_path, pattern):
    from spot_runner.user_script import ScriptError, ScriptSpec, collect_results

    for name in ("results/summary.json", "results/fold-1/metrics.json", "results/fold-1/deep/a.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    for name in ("results/.hidden/x.json", "results/.dot.json", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    spec = ScriptSpec(code=str(tmp_path), entrypoint="train.py", args=(), patches=(), results=pattern)
    matched = glob.glob(glob.escape(str(tmp_path)) + "/" + pattern, recursive=True)
    expected = sorted(os.path.normpath(p) for p in matched if Path(p).is_file())

    try:
        found = [str(p) for p in collect_results(spec, tmp_path)]
    except ScriptError:
        found = []

    assert found == expected
