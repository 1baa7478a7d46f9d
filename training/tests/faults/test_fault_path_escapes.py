"""Paths from input that would lead outside their roots: sweep and config names (they name the default work
directory <SPOT_SWEEP_WORKDIR>/<sweep>/<config>), a script's entrypoint, results glob and patch file, an
S3 data key. The promise: exit 2, a sentence naming the field (or the key), no traceback, and nothing
written outside the store and the work directory: a sentinel folder beside them stays as it was, and no
file appears anywhere else in the sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .faultkit import Problems, has_traceback, kill_strays, local_store, run, s3_store

EVIL = "from pathlib import Path\nPath(__file__).with_name('PWNED').write_text('the runner ran me')\n"


def sandbox(tmp_path: Path) -> dict[str, Path]:
    """store/ and work/ (the roots a run may write in), code/ (the user's script), outside/ (the sentinel:
    a script that must not run, a file that must not be patched or collected)."""
    box = {name: tmp_path / name for name in ("store", "work", "code", "outside")}
    for path in box.values():
        path.mkdir()
    (box["code"] / "train.py").write_text("print('FIND_ME')\n")
    (box["outside"] / "evil.py").write_text(EVIL)
    (box["outside"] / "victim.py").write_text("print('FIND_ME')\n")
    (box["outside"] / "secret.json").write_text('{"secret": true}\n')
    return box


def tree(root: Path, skip: tuple[Path, ...]) -> dict[str, bytes | None]:
    """Every path under ``root`` except the roots in ``skip``: {relative path: bytes, None for a folder}."""
    out = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        out[path.relative_to(root).as_posix()] = path.read_bytes() if path.is_file() else None
    return out


def names_the_field(output: str, field: str) -> bool:
    f = re.escape(field)
    return bool(re.search(rf"`{f}`|'{f}'|\"{f}\"|field {f}\b", output))


def assert_refused(tmp_path, box, done, field: str, roots: tuple[Path, ...], before) -> None:
    p = Problems()
    p.check(done.rc == 2, f"exit {done.rc}, not 2 (bad input)")
    p.check(names_the_field(done.output, field), f"no sentence names `{field}`")
    p.check(not has_traceback(done.output), "a traceback")
    p.check(not (box["outside"] / "PWNED").exists(), "the script outside the code directory ran")
    after = tree(tmp_path, roots)
    p.check(after == before, f"written outside the roots: {sorted(set(after) ^ set(before))}")
    p.assert_none(done.tail())


NAMES = ["..", "../../outside/escape", "ABSOLUTE", "a/b"]


@pytest.mark.parametrize("value", NAMES)
@pytest.mark.parametrize("field", ["sweep", "config"])
def test_fails_when_a_sweep_or_config_name_leads_outside_the_work_root(tmp_path, field, value):
    box = sandbox(tmp_path)
    value = str(box["outside"] / "abs-escape") if value == "ABSOLUTE" else value
    job, _ = local_store(tmp_path, "escape", "/nonexistent-data")
    doc = json.loads(Path(job).read_text())
    doc[field] = value
    Path(job).write_text(json.dumps(doc))
    roots = (box["store"], box["work"])
    before = tree(tmp_path, roots)
    try:  # no --workdir: the runner makes <SPOT_SWEEP_WORKDIR>/<sweep>/<config> itself
        done = run(job, None, env={"SPOT_SWEEP_WORKDIR": str(box["work"])})
    finally:
        kill_strays(tmp_path)
    assert_refused(tmp_path, box, done, field, roots, before)


def script_job(box: dict[str, Path], **script) -> str:
    spec = {
        "code": str(box["code"]),
        "entrypoint": "train.py",
        "args": [],
        "patches": [],
        "results": "*.json",
    }
    spec.update(script)
    job, _ = local_store(box["store"].parent, "escape-script", "/unused")
    doc = json.loads(Path(job).read_text())
    doc.update(data=None, script=spec)
    Path(job).write_text(json.dumps(doc))
    return job


def patch(file: str) -> list[dict]:
    return [{"file": file, "find": "FIND_ME", "replace": "PATCHED"}]


SCRIPT_CASES = {
    "entrypoint-dotdot": ("script.entrypoint", {"entrypoint": "../outside/evil.py"}),
    "entrypoint-absolute": ("script.entrypoint", {"entrypoint": "OUTSIDE/evil.py"}),
    "results-dotdot": ("script.results", {"results": "../outside/*.json"}),
    "results-absolute": ("script.results", {"results": "OUTSIDE/*.json"}),
    "patch-dotdot": ("script.patches[0].file", {"patches": patch("../outside/victim.py")}),
    "patch-absolute": ("script.patches[0].file", {"patches": patch("OUTSIDE/victim.py")}),
}


@pytest.mark.parametrize("case", sorted(SCRIPT_CASES))
def test_fails_when_a_script_path_leads_outside_the_code_directory(tmp_path, case):
    box = sandbox(tmp_path)
    field, script = SCRIPT_CASES[case]
    script = json.loads(json.dumps(script).replace("OUTSIDE", str(box["outside"])))
    job = script_job(box, **script)
    roots = (box["store"], box["work"])
    before = tree(tmp_path, roots)
    try:
        done = run(job, box["work"])
    finally:
        kill_strays(box["work"])
    assert_refused(tmp_path, box, done, field, roots, before)
    collected = (
        [p.name for p in (box["store"] / "results").rglob("*")] if (box["store"] / "results").is_dir() else []
    )
    assert "secret.json" not in collected, "a file outside the code directory was collected into the store"


@pytest.mark.parametrize("escape", ["dotdot", "absolute"])
def test_fails_when_an_s3_data_key_leads_outside_the_data_directory(tmp_path, bucket, make_dataset, escape):
    data = make_dataset()
    box = sandbox(tmp_path)
    prefix = f"datasets/escape-{escape}-{tmp_path.name}/"
    bucket.upload_dir(data, prefix)
    # S3 keys are opaque strings: both are valid keys, and `prefix + key` is what the runner lists.
    key = "../../evil" if escape == "dotdot" else "/" + str(box["outside"] / "evil-abs").lstrip("/")
    bucket.put(prefix + key, b"would land outside the data directory")
    job, view = s3_store(bucket, f"escape-data-{escape}", bucket.uri(prefix))
    roots = (box["store"], box["work"])
    before = tree(tmp_path, roots)
    try:
        done = run(job, box["work"])
    finally:
        kill_strays(box["work"])
    p = Problems()
    p.check(done.rc == 2, f"exit {done.rc}, not 2 (bad input)")
    p.check(key in done.output or prefix + key in done.output, f"no sentence names the key {key!r}")
    p.check(not has_traceback(done.output), "a traceback")
    after = tree(tmp_path, roots)
    p.check(after == before, f"written outside the roots: {sorted(set(after) ^ set(before))}")
    p.check(not (box["work"].parent / "evil").exists(), "the `..` key was written beside the work directory")
    p.check((view.json("status.json") or {}).get("state") == "FAILED", "status.json is not FAILED")
    p.assert_none(done.tail())
