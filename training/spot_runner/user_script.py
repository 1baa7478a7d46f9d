"""Script mode: run the user's own training script, patched, and collect what it writes.

The job's ``script`` object (see .ci/CONTRACTS.md) names a code directory (local) or a .zip
(local or s3), an entrypoint, its args, patches and a results glob. This module prepares the
code (copy or unzip, then patch) and collects the results; the job runner (``spot_runner.job``)
runs the entrypoint under the same supervision as the trainer (log teed and uploaded, SIGTERM
forwarded, status kept).

A patch replaces every occurrence of ``find`` with ``replace`` in ``file``. Unlike the ``sed -i``
of the users' old plan, a patch whose ``find`` matches nothing, or whose file is missing, stops
the job with a message naming the patch, so a script never runs unpatched on the wrong device.
"""

from __future__ import annotations

import glob
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .storage import StorageError, is_s3, local_path, read_object
from .supervisor import python_command


class ScriptError(Exception):
    """The script's code, a patch or its results are wrong; the message names which and the fix."""


@dataclass(frozen=True)
class Patch:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class ScriptSpec:
    code: str
    entrypoint: str
    args: tuple[str, ...]
    patches: tuple[Patch, ...]
    results: str


def fetch_code(spec: ScriptSpec, dest: Path, endpoint_url: str | None = None) -> Path:
    """Copy the code directory (or unpack the .zip) into ``dest`` (replaced if present); returns ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    if spec.code.endswith(".zip"):
        try:
            archive = read_object(spec.code, endpoint_url)
        except StorageError as e:
            raise ScriptError(f"script.code: {e}. Fix: upload the zip or correct script.code.") from e
        zip_path = dest.with_name(dest.name + ".zip")
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        zip_path.write_bytes(archive)
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(dest)
        except zipfile.BadZipFile as e:
            raise ScriptError(
                f"script.code: {spec.code} is not a valid zip file. Fix: re-create it with `zip -r`."
            ) from e
        finally:
            zip_path.unlink(missing_ok=True)
        return dest
    if is_s3(spec.code):
        raise ScriptError(
            f"script.code: {spec.code} is an S3 location but not a .zip; only a local directory or a .zip "
            "can be fetched. Fix: zip the code directory and point script.code at the .zip."
        )
    src = local_path(spec.code)
    if not src.is_dir():
        raise ScriptError(f"script.code: directory {src} does not exist. Fix: correct script.code.")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv"))
    return dest


def apply_patches(spec: ScriptSpec, code_dir: Path) -> list[str]:
    """Apply every patch in order; returns one log line per patch. Raises ScriptError naming a bad patch."""
    lines = []
    for index, patch in enumerate(spec.patches):
        name = f"script.patches[{index}] (file {patch.file!r}, find {patch.find!r})"
        target = (code_dir / patch.file).resolve()
        if not target.is_relative_to(code_dir.resolve()):
            raise ScriptError(
                f"{name}: the file is outside the code directory. Fix: give a path relative to the code root."
            )
        if not target.is_file():
            raise ScriptError(
                f"{name}: the file does not exist in the code directory. "
                "Fix: give the file's path relative to the code root."
            )
        text = target.read_text(encoding="utf-8")
        count = text.count(patch.find)
        if count == 0:
            raise ScriptError(
                f"{name}: the find text matches nothing in the file, so the script would run unpatched. "
                "Fix: copy the exact text (spaces and quotes included) from the file into the patch's find."
            )
        target.write_text(text.replace(patch.find, patch.replace), encoding="utf-8")
        lines.append(f"patch {index}: {patch.file}: replaced {count} occurrence(s) of {patch.find!r}")
    return lines


def command(spec: ScriptSpec, code_dir: Path, nproc: int) -> list[str]:
    """The command line: the job's own Python, under torchrun when more than one process is asked for."""
    entry = code_dir / spec.entrypoint
    if not entry.resolve().is_relative_to(code_dir.resolve()):
        raise ScriptError(
            f"script.entrypoint: {spec.entrypoint!r} leads outside the code directory (a `..` or a symlink). "
            "Fix: give the entrypoint's path relative to the code root."
        )
    if not entry.is_file():
        raise ScriptError(
            f"script.entrypoint: {spec.entrypoint!r} does not exist in the code directory. "
            "Fix: give the entrypoint's path relative to the code root."
        )
    return python_command(nproc, str(entry), *spec.args)


def collect_results(spec: ScriptSpec, code_dir: Path) -> list[Path]:
    """The files the results glob matches (relative to the code root); ScriptError when none."""
    # glob.glob(recursive=True), not Path.glob: before Python 3.13 Path.glob("results/**") yields only
    # directories, so the spec's default glob would match no file.
    matches = glob.glob(glob.escape(str(code_dir)) + "/" + spec.results, recursive=True)
    inside = code_dir.resolve()
    # Only files inside the code directory: a symlink in the code may point anywhere on the instance.
    files = sorted(Path(p) for p in matches if Path(p).is_file() and Path(p).resolve().is_relative_to(inside))
    if not files:
        raise ScriptError(
            f"script.results: the glob {spec.results!r} matched no file in the code directory after the "
            "script exited with success. Fix: make the glob match the files the script writes "
            "(relative to the code root)."
        )
    return files
