"""Script mode: run the user's own training script, patched, and collect what it writes.

The job's ``script`` object (see .ci/CONTRACTS.md) names a code directory (local) or a .zip
(local or s3), an entrypoint, its args, patches and a results glob. This module prepares the
code (copy or unzip, then patch) and collects the results; the job runner (``spot_runner.job``)
runs the entrypoint under the same supervision as the trainer (log teed and uploaded, SIGTERM
forwarded, status kept).

A patch replaces every occurrence of ``find`` with ``replace`` in ``file``. Unlike the ``sed -i``
of the users' old plan, a patch whose ``find`` matches nothing, or whose file is missing, stops
the job with a message naming the patch, so a script never runs unpatched on the wrong device.

The code is copied following its symlinks, as before, but a symlink loop is refused (named) instead of
copied for ever, and a broken symlink is left out (it reads as a missing file either way); a zip entry whose
name or symlink leads outside the code directory is refused, named, before anything is unpacked. The
results glob is matched over the same loop-safe walk (``walk``), never through a link out of the code.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import stat
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .exits import EXIT_BAD_INPUT, EXIT_FAILED
from .quote import quote
from .storage import StorageError, is_s3, local_path, read_object
from .supervisor import python_command

DISK_REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""Errors of a write the work directory's disk refused: passed on as they are, for the job runner to name the
disk and say what to do (``job.WRITE_ERRORS`` has a sentence for each)."""


class ScriptError(Exception):
    """The script's code, a patch or its results are wrong; the message names which and the fix. ``code``: the
    exit code when it is found after the script ran (before, every ScriptError is bad input)."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Patch:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Metric:
    """job.json ``script.metric``, every default filled in by the spec (lib/spec/validate.ts); read by
    ``script_metric``."""

    pointer: str
    name: str
    higher_is_better: bool
    folds: str | None
    file: str | None


@dataclass(frozen=True)
class ScriptSpec:
    code: str
    entrypoint: str
    args: tuple[str, ...]
    patches: tuple[Patch, ...]
    results: str
    metric: Metric | None = None
    requirements: str | None = None
    launcher: str = "python"
    """``python``: one process that sees every GPU; ``torchrun``: one process per GPU."""


def escapes(path: str) -> bool:
    """Whether a path from the job or an archive names something outside its root: absolute (a drive letter
    too), or with a `..` part."""
    parts = path.replace("\\", "/").split("/")
    return path.startswith(("/", "\\")) or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":")


LINKS_LOOP = "a symlink loop: its links point at each other"


class TreeProblem(Exception):
    """A place in a directory tree that cannot be walked: ``path`` (relative to the root walked) and why."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def walk(root: Path, inside_only: bool = False) -> Iterator[tuple[Path, list[str]]]:
    """Every directory under ``root`` with its entries that are not directories, following directory symlinks
    as copytree and a script do, so every place they reach is seen. A symlink loop, which following would
    never leave, raises TreeProblem instead: a directory link to a directory it is inside (``up -> ..``,
    ``self -> .``), links that lead to each other (``a -> b``, ``b -> a``), or a circle of directory links.
    ``inside_only``: directory links leading outside ``root`` are not followed."""
    top = os.path.realpath(root)
    # The real directories from the root down to each directory walked, through the links followed: a link
    # whose target is one of them, or above one of them, is a loop.
    chains: dict[str, tuple[str, ...]] = {str(root): (top,)}

    def relative(path: str) -> str:
        return os.path.relpath(path, root)

    def unreadable(err: OSError) -> None:
        raise TreeProblem(relative(err.filename or str(root)), f"it cannot be read ({err.strerror})")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        chain = chains.pop(dirpath)
        followed = []
        for name in dirnames:
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path)
            if any(seen == real or seen.startswith(real + os.sep) for seen in chain):
                raise TreeProblem(relative(path), f"a symlink loop: it leads back to {real}, which holds it")
            if inside_only and not (real == top or real.startswith(top + os.sep)):
                continue  # outside the root: nothing there counts, and it may be the whole disk
            chains[path] = (*chain, real)
            followed.append(name)
        dirnames[:] = followed
        for path in (os.path.join(dirpath, name) for name in filenames):
            try:
                os.stat(path)
            except OSError as e:  # a broken link (ENOENT) is a missing file: it is the caller's to skip
                if e.errno == errno.ELOOP:
                    raise TreeProblem(relative(path), LINKS_LOOP) from None
        yield Path(dirpath), filenames


def fetch_code(spec: ScriptSpec, dest: Path, endpoint_url: str | None = None) -> Path:
    """Copy the code directory (or unpack the .zip) into ``dest`` (replaced if present); returns ``dest``.
    A symlink loop, an entry that cannot be copied or a zip entry leading outside is refused, named."""
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
            _unzip(zip_path, dest, spec.code)
        except zipfile.BadZipFile as e:
            raise ScriptError(
                f"script.code: {spec.code} is not a valid zip file. Fix: re-create it with `zip -r`."
            ) from e
        finally:
            zip_path.unlink(missing_ok=True)
        _refuse_loops(dest, spec.code)
        return dest
    if is_s3(spec.code):
        raise ScriptError(
            f"script.code: {spec.code} is an S3 location but not a .zip; only a local directory or a .zip "
            "can be fetched. Fix: zip the code directory and point script.code at the .zip."
        )
    src = local_path(spec.code)
    if src.is_file():
        raise ScriptError(
            f"script.code: {src} is a file, not a directory or a .zip (only a zip is unpacked). Fix: point "
            "script.code at the code directory, or zip it (`zip -r ../code.zip .` inside it) and at the zip."
        )
    if not src.is_dir():
        raise ScriptError(f"script.code: directory {src} does not exist. Fix: correct script.code.")
    _refuse_loops(src, str(src))  # before copying: copytree follows directory links, into a loop for ever
    try:
        shutil.copytree(src, dest, ignore=_not_copied, copy_function=_copy)
    except _DiskRefused as e:
        raise e.error from None
    except shutil.Error as e:
        failed, _, why = e.args[0][0]
        more = f", and {len(e.args[0]) - 1} more" if len(e.args[0]) > 1 else ""
        raise ScriptError(
            f"script.code: {quote(os.path.relpath(failed, src))} in {src} cannot be copied ({why}{more}). "
            "Fix: remove it from the code directory, or make it a readable file or directory."
        ) from e
    return dest


def _refuse_loops(root: Path, code: str) -> None:
    try:
        for _ in walk(root):
            pass
    except TreeProblem as e:
        raise ScriptError(
            f"script.code: {quote(e.path)} in {code} is {e.why}. Fix: remove that symlink from the code, or "
            "point it at something that does not hold it."
        ) from None


def _not_copied(directory: str, names: list[str]) -> list[str]:
    """copytree's ignore: caches and virtual environments, and broken symlinks (a link to nothing, such as an
    editor's lock file, reads as a missing file either way; copying it would fail)."""
    skipped = [n for n in names if n in (".git", "__pycache__", ".venv")]
    return skipped + [
        n
        for n in names
        if n not in skipped
        and os.path.islink(os.path.join(directory, n))
        and not os.path.exists(os.path.join(directory, n))
    ]


class _DiskRefused(Exception):
    """A copy the disk refused: copytree would collect it with every later file's, so it passes through."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _copy(src: str, dst: str) -> str:
    try:
        return shutil.copy2(src, dst)
    except OSError as e:
        if e.errno in DISK_REFUSED:
            raise _DiskRefused(e) from e
        raise


def _unzip(zip_path: Path, dest: Path, code: str) -> None:
    """Unpack every entry under ``dest``; symlinks (`zip -y`) are made as symlinks. An entry whose name or
    link leads outside ``dest`` is refused, named, before anything is written: zipfile would drop the `..`
    parts and the leading `/` of a name, and make a link a file holding its target."""
    with zipfile.ZipFile(zip_path) as zf:
        entries = zf.infolist()
        links = {}
        for info in entries:
            if escapes(info.filename):
                raise ScriptError(
                    _outside(code, f"the entry {quote(info.filename)}", "a `..` part or an absolute name")
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                target = zf.read(info).decode("utf-8", "replace")
                lexical = os.path.normpath(os.path.join(os.path.dirname(info.filename), target))
                if os.path.isabs(target) or lexical == ".." or lexical.startswith("../"):
                    raise ScriptError(
                        _outside(code, f"the symlink {quote(info.filename)}", f"to {quote(target)}")
                    )
                links[info.filename.rstrip("/")] = target
        for info in entries:
            if info.filename.rstrip("/") not in links:
                zf.extract(info, dest)
    inside = dest.resolve()
    for name, target in links.items():
        link = dest / name
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(target)
        except FileExistsError:
            raise ScriptError(
                f"script.code: {code} holds {quote(name)} twice, as a symlink and as a file or directory. "
                "Fix: re-create the zip from the code directory (`zip -r -y ../code.zip .` inside it)."
            ) from None
    for name, target in links.items():
        try:  # links through links can still lead out (`a -> .`, `b -> a/..`)
            leads_out = not (dest / name).resolve().is_relative_to(inside)
        except (RuntimeError, OSError):  # a loop: _refuse_loops names it
            continue
        if leads_out:
            raise ScriptError(
                _outside(code, f"the symlink {quote(name)}", f"to {quote(target)}, through links")
            )


def _outside(code: str, entry: str, how: str) -> str:
    return (
        f"script.code: {code} holds {entry}, which leads outside the code directory ({how}), so nothing is "
        "unpacked. Fix: re-create the zip from inside the code directory (`zip -r ../code.zip .`), with no "
        "entry or symlink that points out of it."
    )


def apply_patches(spec: ScriptSpec, code_dir: Path) -> list[str]:
    """Apply every patch in order; returns one log line per patch. Raises ScriptError naming a bad patch."""
    lines = []
    for index, patch in enumerate(spec.patches):
        name = f"script.patches[{index}] (file {quote(patch.file)}, find {quote(patch.find)})"
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
        try:
            text = target.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ScriptError(
                f"{name}: {patch.file} in {spec.code} is not UTF-8 text (byte {e.start} is "
                f"{e.object[e.start : e.start + 1]!r}), so the patch cannot edit it. "
                f"Fix: save {patch.file} as UTF-8, or patch a text file."
            ) from None
        count = text.count(patch.find)
        if count == 0:
            raise ScriptError(
                f"{name}: the find text matches nothing in the file, so the script would run unpatched. "
                "Fix: copy the exact text (spaces and quotes included) from the file into the patch's find."
            )
        target.write_text(text.replace(patch.find, patch.replace), encoding="utf-8")
        lines.append(f"patch {index}: {patch.file}: replaced {count} occurrence(s) of {quote(patch.find)}")
    return lines


def command(spec: ScriptSpec, code_dir: Path, nproc: int, python: str | None = None) -> list[str]:
    """The command line: ``python`` (the job's own, or the requirements venv's) running the entrypoint; with
    launcher ``torchrun``, under torchrun when more than one process is asked for. Launcher ``python`` is one
    process whatever ``nproc``: the script sees every GPU and spreads over them itself (DataParallel)."""
    entry = code_dir / spec.entrypoint
    if not entry.resolve().is_relative_to(code_dir.resolve()):
        raise ScriptError(
            f"script.entrypoint: {quote(spec.entrypoint)} leads outside the code directory (a `..` or a "
            "symlink). Fix: put the entrypoint itself in the code directory, and give its path from there."
        )
    if not entry.is_file():
        raise ScriptError(
            f"script.entrypoint: {quote(spec.entrypoint)} does not exist in the code directory. "
            "Fix: give the entrypoint's path relative to the code root."
        )
    if spec.launcher == "torchrun":
        return python_command(nproc, str(entry), *spec.args, python=python)
    return [python or sys.executable, str(entry), *spec.args]


def collect_results(spec: ScriptSpec, code_dir: Path) -> list[Path]:
    """The files the results glob matches (relative to the code root); ScriptError when none.

    Matched as glob.glob(recursive=True) does (``*`` within a name, ``**`` over directories, hidden names only
    by a pattern that starts with a dot) over ``walk``, not glob itself: glob follows every directory symlink,
    so a loop the script made would have it repeat the files for ever (or as deep as the kernel lets it)."""
    if not code_dir.is_dir():
        raise ScriptError(
            f"script.results: the code directory {code_dir} no longer exists after the script ran (the "
            "script removed or moved it), so there are no results to collect. Fix: let the script write its "
            "results inside its working directory and leave that in place.",
            EXIT_FAILED,
        )
    pattern = [p for p in spec.results.replace("\\", "/").split("/") if p not in ("", ".")]
    fixed = 0  # the pattern's leading parts without wildcards: the walk starts below them
    while fixed < len(pattern) and not any(c in pattern[fixed] for c in "*?["):
        fixed += 1
    start = code_dir.joinpath(*pattern[:fixed])
    inside = code_dir.resolve()
    found = [start] if fixed == len(pattern) and start.is_file() else []
    try:
        for directory, names in walk(start, inside_only=True) if start.is_dir() else ():
            rel = directory.relative_to(code_dir).parts
            found += [directory / n for n in names if _matches((*rel, n), pattern)]
    except TreeProblem as e:
        where = quote(str(Path(*pattern[:fixed], e.path)))
        raise ScriptError(
            f"script.results: {where} in the code directory is {e.why}, so the results glob "
            f"{quote(spec.results)} cannot be followed through it. Fix: remove that symlink (the script made "
            "it), or point it at something that does not hold it."
        ) from None
    # Only files inside the code directory: a symlink in the code may point anywhere on the instance.
    files = sorted(p for p in found if p.is_file() and p.resolve().is_relative_to(inside))
    if not files:
        raise ScriptError(
            f"script.results: the glob {quote(spec.results)} matched no file in the code directory after the "
            "script exited with success. Fix: make the glob match the files the script writes "
            "(relative to the code root).",
            EXIT_FAILED,
        )
    return files


def _matches(parts: tuple[str, ...], pattern: list[str]) -> bool:
    """Whether a path (its parts) matches a glob pattern (its parts), as glob.glob(recursive=True) has it."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return _matches(parts, rest) or (
            bool(parts) and not parts[0].startswith(".") and _matches(parts[1:], pattern)
        )
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _matches(parts[1:], rest)
