"""job.json ``encoder``: the dataset's texts encoded once, kept in the store, reused by configs and attempts.

Before the trainer starts, the job runner turns the text layout (queries.csv, docs.csv, pairs) into the
embedding layout the trainer reads, with ``python -m two_tower.encode_texts``. The result is kept in the
store at ``cache/embeddings/<key>/`` (names.json ``store.embeddingCache``, beside the wheel cache; for a
store that is not ``.../sweeps/<sweep>/<config>/`` the config's own prefix), where the key is the sha256 of:
the layout's version (two_tower.encode_texts LAYOUT_VERSION), the encoder's identity
(two_tower.encode_texts.encoder_identity: a directory, local or fetched from s3://, the sha256 of each of its
files; a hub name: the name and the revision asked for, or without one the commit this machine's Hugging Face
cache resolves it to, else the name only, said in the log) and the sha256 of queries.csv and docs.csv. The
identity is passed to encode_texts, which records it in the entry's encoder.json; the trainer copies that
file's content into model.json (``encoder``), so model.json's identity is the one the key used.
A second config with the same encoder and texts, a resumed attempt, or a replacement instance downloads the
vectors instead of encoding again. The pairs file is not part of the key: it is copied from the
dataset each time, beside the cached vectors, into the directory the trainer reads.

``manifest.json`` (file -> sha256) is uploaded last: a prefix without one is an encoding cut short and is
encoded again. A reader verifies every file's digest against it before use; a file that is missing or does
not match (a damaged upload, a truncated object) makes the runner encode again and replace the entry.

The encoder's packages (training/requirements-encoder.txt) are installed only for a job that names an
encoder, by spot_runner/requirements.py (its venv layered on the job's Python and its wheel cache); a Python
that already has the pinned versions (a local clone set up with requirements-dev.txt) is used as it is.
An s3:// encoder is copied with the storage layer (storage.py) into the work directory first; an object whose
ETag or size differs from the copy's record is fetched again and a local file no longer listed is removed, so
the digest keyed on is the prefix's current content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import contract
from contract import sha256_file

from .exits import EXIT_BAD_INPUT, EXIT_FAILED
from .fetch import mirror
from .quote import quote
from .requirements import CACHE_ENV as WHEEL_CACHE_ENV
from .requirements import install as install_requirements
from .runlog import JobError, log
from .storage import StorageError, is_s3, local_path, open_store
from .user_script import ScriptError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = "requirements-encoder.txt"
MANIFEST = "manifest.json"
TEXT_FILES = ("queries.csv", "docs.csv")
PAIRS_FILES = ("pairs.csv", "pairs.parquet")
MODULES = "modules.json"
_CACHE_TEMPLATE = contract.NAMES["store"]["embeddingCache"]
_CONFIG_TEMPLATE = contract.NAMES["store"]["config"]


def cache_root(store_uri: str, sweep: str, config: str) -> str:
    """The store root the cache lives under: the config's store prefix less ``sweeps/<sweep>/<config>/``."""
    suffix = _CONFIG_TEMPLATE.format(sweep=sweep, config=config)
    base = store_uri if store_uri.endswith("/") else store_uri + "/"
    return base[: -len(suffix)] if base.endswith(suffix) else base


def cache_prefix(key: str) -> str:
    return _CACHE_TEMPLATE.format(key=key)


class Encoder:
    """The job's encoder: what encode_texts is given (a local directory or a hub name) and its identity."""

    def __init__(self, value: str, work: Path, endpoint_url: str | None, say=log, commit_of=None):
        from two_tower.encode_texts import cached_hub_commit, directory_digest, encoder_identity

        self.value = value
        if is_s3(value):
            self.arg = str(self._fetch(value, work, endpoint_url))
            self.identity = "dir:" + directory_digest(Path(self.arg))
        elif value.startswith("file://") or value.startswith("/"):
            path = local_path(value)
            if not (path / MODULES).is_file():
                raise JobError(
                    f"The encoder {path} (job field `encoder`) is not a sentence-transformers model "
                    f"directory: {'it has no ' + MODULES if path.is_dir() else 'it does not exist'}. Fix: "
                    "point `encoder` at a directory written by SentenceTransformer.save(), or at a hub name.",
                    EXIT_BAD_INPUT,
                )
            self.arg = str(path)
            self.identity = "dir:" + directory_digest(path)
        else:
            self.arg = value
            # An unpinned name: its commit when this machine's Hugging Face cache has it, else the name only.
            self.identity, note = encoder_identity(value, commit_of or cached_hub_commit)
            say(f"embeddings: {note}" if note else f"embeddings: encoder identity {self.identity}")

    @staticmethod
    def _fetch(uri: str, work: Path, endpoint_url: str | None) -> Path:
        dest = work / ("encoder-" + hashlib.sha256(uri.encode()).hexdigest()[:16])
        # What each local file was fetched as (fetch.mirror's record), kept beside the copy, not in it: the
        # copy's digest is the encoder's identity.
        record_path = dest.with_name(dest.name + ".etags.json")

        def failed(key: str, e: StorageError) -> JobError:
            return JobError(
                f"The encoder {uri} (job field `encoder`) cannot be fetched: {e}. Fix: upload the model "
                "directory there or correct `encoder`."
            )

        try:
            store = open_store(uri if uri.endswith("/") else uri + "/", endpoint_url)
            objects = [o for o in store.list() if not o.key.endswith("/")]
        except StorageError as e:
            raise failed(uri, e) from e
        if not any(o.key == MODULES for o in objects):
            raise JobError(
                f"The encoder {uri} (job field `encoder`) holds no {MODULES}: it is not a "
                "sentence-transformers model. Fix: upload a directory written by "
                "SentenceTransformer.save() there, or correct `encoder`.",
                EXIT_BAD_INPUT,
            )
        inside = dest.resolve()
        for obj in objects:
            if not (dest / obj.key).resolve().is_relative_to(inside):
                raise JobError(
                    f"The encoder's object {quote(obj.key)} under {uri} leads outside its directory. "
                    f"Fix: rename it.",
                    EXIT_BAD_INPUT,
                )
        listed = {o.key for o in objects}
        if dest.is_dir():  # a file deleted from the prefix since the last fetch is no part of the model
            for path in [p for p in dest.rglob("*") if p.is_file()]:
                if path.relative_to(dest).as_posix() not in listed:
                    path.unlink()
        mirror(store, objects, dest, record_path, failed)
        log(f"encoder: {len(objects)} file(s) from {uri} in {dest}")
        return dest


def texts_digests(data_dir: Path) -> dict[str, str]:
    out = {}
    for name in TEXT_FILES:
        path = data_dir / name
        if not path.is_file():
            raise JobError(
                f"Data file {path} is missing: job field `encoder` encodes the dataset's texts, queries.csv "
                "and docs.csv (id,text). Fix: import the texts with `spot-sweep data import`, or set "
                "`encoder` to null for a dataset of embeddings.",
                EXIT_BAD_INPUT,
            )
        out[name] = sha256_file(path)
    return out


def cache_key(layout_version: int, encoder_identity: str, texts: dict[str, str]) -> str:
    doc = {"layout": layout_version, "encoder": encoder_identity, "texts": texts}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def _pinned_present(requirements: Path) -> bool:
    """Whether this Python already has every ``name==version`` the requirements file pins."""
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            return False
        try:
            if metadata.version(name.strip()) != version.strip():
                return False
        except metadata.PackageNotFoundError:
            return False
    return True


def encoder_python(work: Path, endpoint_url: str | None) -> str:
    """A Python with the encoder's packages: this one when it has the pinned versions, else the venv."""
    req = PACKAGE_ROOT / REQUIREMENTS
    if _pinned_present(req):
        log(f"encoder: {REQUIREMENTS} already satisfied by {sys.executable}")
        return sys.executable
    try:
        return install_requirements(
            PACKAGE_ROOT,
            REQUIREMENTS,
            work,
            cache_uri=os.environ.get(WHEEL_CACHE_ENV),
            endpoint_url=endpoint_url,
        )
    except ScriptError as e:
        raise JobError(f"The encoder's packages could not be installed: {e}", e.code) from e


class EmbeddingCache:
    """One job's entry: ``prepare`` returns the directory the trainer reads (embedding layout + pairs)."""

    def __init__(self, job: dict, work: Path, endpoint_url: str | None, child_env: dict, say=log):
        self.say = say  # the runner's note: stderr and train.log, so the log tells whether it encoded
        self.job = job
        self.work = work
        self.endpoint = endpoint_url
        self.env = child_env
        self.encoded = False  # whether this attempt encoded (False: the cache's vectors were used)

    def prepare(self, data_dir: Path) -> Path:
        from two_tower.encode_texts import EMBEDDING_FILES, LAYOUT_VERSION  # no torch: numpy and pandas

        encoder = Encoder(self.job["encoder"], self.work, self.endpoint, say=self.say)
        key = cache_key(LAYOUT_VERSION, encoder.identity, texts_digests(data_dir))
        root = cache_root(self.job["store"], self.job["sweep"], self.job["config"])
        try:
            cache = open_store(root + cache_prefix(key), self.endpoint)
        except StorageError as e:
            raise JobError(f"The embedding cache under {root} cannot be opened: {e}", EXIT_FAILED) from e
        local = self.work / "embeddings" / key
        if not self._read(cache, local, EMBEDDING_FILES):
            self._encode(encoder, data_dir, local, cache, key, EMBEDDING_FILES)
        return self._trainer_data(local, data_dir, EMBEDDING_FILES)

    def _read(self, cache, local: Path, files: tuple[str, ...]) -> bool:
        """The cached vectors into ``local``, every digest verified; False when they must be encoded."""
        try:
            raw = cache.get_bytes(MANIFEST)
        except StorageError as e:
            self.say(f"embeddings: {cache.describe(MANIFEST)} not readable ({e}): encoding")
            return False
        if raw is None:
            self.say(f"embeddings: no entry in {cache.describe()} yet: encoding")
            return False
        try:
            manifest = json.loads(raw)["files"]
            assert set(manifest) == set(files)
        except (ValueError, KeyError, TypeError, AssertionError):
            self.say(f"embeddings: {cache.describe(MANIFEST)} is damaged: encoding again")
            return False
        for name in files:
            path = local / name
            try:
                if not (path.is_file() and sha256_file(path) == manifest[name]):
                    cache.download(name, path)
            except StorageError as e:
                self.say(f"embeddings: {cache.describe(name)} not fetched ({e}): encoding again")
                return False
            if sha256_file(path) != manifest[name]:
                self.say(
                    f"embeddings: {cache.describe(name)} does not match its digest in {MANIFEST}: "
                    "encoding again"
                )
                return False
        self.say(f"embeddings: cache hit, {cache.describe()} (verified {len(files)} files): not encoding")
        return True

    def _encode(self, encoder: Encoder, data_dir: Path, local: Path, cache, key: str, files) -> None:
        python = encoder_python(self.work, self.endpoint)
        shutil.rmtree(local, ignore_errors=True)
        cmd = [python, "-m", "two_tower.encode_texts", "--data", str(data_dir), "--encoder", encoder.arg]
        cmd += ["--out", str(local), "--encoder-name", encoder.value, "--encoder-identity", encoder.identity]
        self.say(f"embeddings: encoding {data_dir}'s texts with {encoder.value} (cache key {key})")
        # Line by line into train.log as they come (an encode of millions of texts takes minutes on a GPU, and
        # the store's log is how anyone sees it working), stderr folded in; the last line names a failure.
        lines: list[str] = []
        with subprocess.Popen(
            cmd, env=self.env, cwd=PACKAGE_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as child:
            assert child.stdout is not None
            for raw in child.stdout:
                line = raw.rstrip()
                if line and "it/s]" not in line:  # progress bars redraw; their final count is printed anyway
                    self.say(line)
                    lines = [*lines[-19:], line]
        if child.returncode != 0:
            tail = lines[-1] if lines else f"exit {child.returncode}"
            code = EXIT_BAD_INPUT if child.returncode == EXIT_BAD_INPUT else EXIT_FAILED
            raise JobError(f"Encoding the texts with {encoder.value} failed: {tail}", code)
        self.encoded = True
        manifest = {"version": 1, "key": key, "encoder": encoder.identity, "files": {}}
        try:
            for name in files:
                manifest["files"][name] = sha256_file(local / name)
                cache.upload(local / name, name)
            # Last: an entry without it (a kill mid-upload) is never read as complete.
            cache.put_bytes(MANIFEST, json.dumps(manifest, indent=1).encode())
            self.say(f"embeddings: written to {cache.describe()}")
        except StorageError as e:
            self.say(
                f"warning: embeddings not written to {cache.describe()} ({e}); the next job encodes again"
            )

    @staticmethod
    def _trainer_data(local: Path, data_dir: Path, files) -> Path:
        """The trainer's --data: the vectors (hard links, or copies across file systems) and the pairs."""
        out = local.parent / (local.name + "-data")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for name in files:
            try:
                os.link(local / name, out / name)
            except OSError:
                shutil.copy2(local / name, out / name)
        for name in PAIRS_FILES:
            if (data_dir / name).is_file():
                shutil.copy2(data_dir / name, out / name)
        return out
