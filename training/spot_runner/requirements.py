"""Script mode: the script's own requirements file (job.json ``script.requirements``), installed before it
runs.

The packages go into a venv of their own, layered on the job's Python: on AWS that is the Deep Learning AMI's
PyTorch venv (or the bootstrap's torch venv), so torch and whatever else it holds are seen, not reinstalled.
The AMI's Python is itself a venv, and ``python -m venv --system-site-packages`` run from a venv layers on the
*base* interpreter's site-packages, not the venv's: the layering is a ``.pth`` file in the new venv that puts
the job Python's own site-packages directories after the venv's (site(3): every line of a ``.pth`` file is
added to sys.path), so a package the requirements pin wins and everything else comes from the job's Python.
@see https://docs.python.org/3/library/site.html

The venv is keyed by the digest of the requirements file, the Python version and the platform
(``venv-<digest>`` in the work directory): a resume on the same instance, or a second config with the same
file, reuses it. On a replacement instance the wheels come from the artifact bucket's wheel cache (env
``SPOT_SWEEP_WHEEL_CACHE``, the bootstrap's ``--wheel-cache``, under ``script/<digest>/``): pip first
installs from it alone (``--no-index --find-links``); when that fails (the first instance, a cache not
readable), pip resolves what the venv lacks (``pip install --dry-run --report``, which skips what the job's
Python already has), builds a wheel of each (``pip wheel --no-deps``, with the file's own index options),
installs from those wheels alone and writes them back to the cache for the next instance.
@see https://pip.pypa.io/en/stable/reference/installation-report/

A file that is missing, or an install pip refuses, fails the job naming the file and pip's last lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from .exits import EXIT_FAILED
from .quote import quote
from .runlog import log
from .storage import StorageError, open_store
from .user_script import ScriptError

CACHE_ENV = "SPOT_SWEEP_WHEEL_CACHE"
CACHE_FOLDER = "script/"
"""Below the wheel cache (names.json store.wheelCache, s3://<bucket>/cache/wheels): the script wheels, by
digest, beside the bootstrap's torch wheels (by wheel index)."""
COMPLETE = ".spot-sweep-complete"
"""Written into the venv last: a venv without it (a kill mid-install) is made again."""
INDEX_OPTIONS = {
    "-i": True,
    "--index-url": True,
    "--extra-index-url": True,
    "-f": True,
    "--find-links": True,
    "--trusted-host": True,
    "--no-index": False,
    "--pre": False,
}
"""The options of a requirements file that say where packages come from (True: takes a value): passed on to
``pip wheel``, which builds the resolved packages one by one."""
PIP_TAIL_LINES = 8


def digest(requirements: bytes) -> str:
    """The venv's and the cache's key: the file, this Python's version and the platform (wheels are built for
    both)."""
    h = hashlib.sha256(requirements)
    h.update(f"\0{sys.version_info.major}.{sys.version_info.minor}\0{sysconfig.get_platform()}".encode())
    h.update(platform.machine().encode())
    return h.hexdigest()[:16]


def install(
    code_dir: Path,
    name: str,
    work: Path,
    python: str = sys.executable,
    cache_uri: str | None = None,
    endpoint_url: str | None = None,
) -> str:
    """Install ``name`` (a requirements file relative to ``code_dir``) into its venv under ``work``; returns
    the venv's Python, which the script then runs with. Raises ScriptError naming the file and pip's last
    lines."""
    req = code_dir / name
    if not req.resolve().is_relative_to(code_dir.resolve()):
        raise ScriptError(
            f"script.requirements: {quote(name)} leads outside the code directory (a symlink). Fix: put the "
            "requirements file itself in the code directory."
        )
    if not req.is_file():
        raise ScriptError(
            f"script.requirements: {quote(name)} does not exist in the code directory. Fix: add the file "
            "(pip's requirements format), or give its path relative to the code root, or remove the key."
        )
    key = digest(req.read_bytes())
    venv = work / f"venv-{key}"
    venv_python = venv / "bin" / "python"
    if (venv / COMPLETE).is_file() and venv_python.exists():
        log(f"requirements: {name}: reusing {venv} (same file and Python)")
        return str(venv_python)
    shutil.rmtree(venv, ignore_errors=True)
    _run([python, "-m", "venv", str(venv)], code_dir, name, "creating the venv failed")
    _layer(python, venv_python)
    wheels = work / f"wheels-{key}"
    wheels.mkdir(parents=True, exist_ok=True)
    cache = _cache(cache_uri, endpoint_url, key)
    if cache is not None and _fetch(cache, wheels):
        try:
            _pip(
                venv_python, ["install", "--no-index", "--find-links", str(wheels), "-r", str(req)], code_dir
            )
            log(f"requirements: {name}: installed from the wheel cache {cache.describe()}")
            (venv / COMPLETE).write_text(key)
            return str(venv_python)
        except subprocess.CalledProcessError:
            log(f"requirements: {name}: the wheel cache {cache.describe()} lacks some of them; building")
    try:
        pinned = _resolve(venv_python, req, code_dir, work / f"report-{key}.json")
        if pinned:
            options = _index_options(req)
            _pip(venv_python, ["wheel", "--no-deps", "--wheel-dir", str(wheels), *options, *pinned], code_dir)
        _pip(venv_python, ["install", "--no-index", "--find-links", str(wheels), "-r", str(req)], code_dir)
    except subprocess.CalledProcessError as e:
        tail = " | ".join((e.output or "").strip().splitlines()[-PIP_TAIL_LINES:])
        raise ScriptError(
            f"script.requirements: pip could not install {quote(name)} (exit {e.returncode}). pip's last "
            f"lines: {tail}. Fix: correct the requirements file (package names, versions, index options) so "
            f"that `pip install -r {name}` works on a machine with this job's Python "
            f"{sys.version_info.major}.{sys.version_info.minor}.",
            EXIT_FAILED,
        ) from None
    log(f"requirements: {name}: installed {len(pinned)} package(s) into {venv}: {' '.join(pinned) or 'none'}")
    if cache is not None and pinned:
        _store(cache, wheels)
    (venv / COMPLETE).write_text(key)
    return str(venv_python)


def _layer(python: str, venv_python: Path) -> None:
    """The job Python's site-packages after the venv's own, by a .pth file (see the module's docstring)."""
    paths = subprocess.run(
        [
            python,
            "-c",
            "import json, site, sys; print(json.dumps([p for p in sys.path if p.endswith('-packages')]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    purelib = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_spot_sweep_job_python.pth").write_text("\n".join(json.loads(paths)) + "\n")


def _resolve(venv_python: Path, req: Path, code_dir: Path, report: Path) -> list[str]:
    """Every package the venv lacks for ``req`` (what the job Python has is skipped): ``name==version``, or
    the local file or directory it comes from (``./mypkg`` in the file), which no index holds."""
    _pip(venv_python, ["install", "--dry-run", "--quiet", "--report", str(report), "-r", str(req)], code_dir)
    doc = json.loads(report.read_text())
    pinned = []
    for item in doc.get("install", []):
        url = item.get("download_info", {}).get("url", "")
        local = url.startswith("file://") and not item.get("download_info", {}).get("archive_info")
        meta = item["metadata"]
        pinned.append(url if local else f"{meta['name']}=={meta['version']}")
    return pinned


def _index_options(req: Path) -> list[str]:
    """The requirements file's lines that say where packages come from, as pip options."""
    options: list[str] = []
    for raw in req.read_text().splitlines():
        words = shlex.split(raw, comments=True)
        i = 0
        while i < len(words):
            word, _, inline = words[i].partition("=")
            if word in INDEX_OPTIONS:
                takes = INDEX_OPTIONS[word]
                if takes and not inline and i + 1 < len(words):
                    options += [word, words[i + 1]]
                    i += 1
                else:
                    options.append(words[i])
            i += 1
    return options


def _pip(venv_python: Path, args: list[str], cwd: Path) -> None:
    """pip in the venv, from the code directory (relative paths in the requirements file are the user's)."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [str(venv_python), "-m", "pip", *args],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(cmd: list[str], cwd: Path, name: str, what: str) -> None:
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stdout.strip().splitlines()[-PIP_TAIL_LINES:])
        raise ScriptError(
            f"script.requirements: {quote(name)}: {what} ({' '.join(cmd[:3])}, exit {done.returncode}): "
            f"{tail}. Fix: give the job a Python with the venv module (python3-venv).",
            EXIT_FAILED,
        )


def _cache(uri: str | None, endpoint_url: str | None, key: str):
    if not uri:
        return None
    try:
        return open_store(uri.rstrip("/") + "/" + CACHE_FOLDER + key + "/", endpoint_url)
    except StorageError as e:
        log(f"warning: wheel cache {uri} not usable ({e}): building the wheels")
        return None


def _fetch(cache, wheels: Path) -> bool:
    """The cached wheels into ``wheels``; whether there were any."""
    try:
        found = [o for o in cache.list() if o.key.endswith(".whl") and "/" not in o.key]
        for obj in found:
            if not (wheels / obj.key).is_file():
                cache.download(obj.key, wheels / obj.key)
    except StorageError as e:
        log(f"warning: wheel cache {cache.describe()} not readable ({e}): building the wheels")
        return False
    return bool(found)


def _store(cache, wheels: Path) -> None:
    try:
        for path in sorted(wheels.glob("*.whl")):
            cache.upload(path, path.name)
        log(f"requirements: wheels written to the cache {cache.describe()}")
    except StorageError as e:
        log(f"warning: wheel cache {cache.describe()} not written ({e}); the next instance builds again")
