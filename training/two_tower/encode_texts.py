"""Encode a text dataset's queries and documents with a sentence-transformers model.

    python -m two_tower.encode_texts --data DIR --encoder NAME_OR_DIR --out DIR
        [--batch-size N] [--device auto] [--encoder-name NAME --encoder-identity ID]

DIR holds the text layout (``spot-sweep data import``): pairs.csv or pairs.parquet, queries.csv
(query_id,text), docs.csv (doc_id,text). OUT gets the embedding layout the trainer reads (two_tower/data.py):
query_embeddings.npy + query_ids.txt, doc_embeddings.npy + doc_ids.txt (float32, one row per id, in the texts
files' order), and a copy of the pairs file. The vectors are L2-normalised (``normalize_embeddings``): the
sentence-transformers retrieval models are trained for cosine similarity, and unit rows keep every value far
below data.py's MAX_EMBEDDING_VALUE. OUT is written whole into a sibling temporary directory and renamed into
place, so a kill mid-way never leaves a half-written dataset that looks complete. OUT also gets encoder.json
(``{"version", "name", "identity"}``): which encoder made the vectors, so the trainer can record it in
model.json and ``python -m two_tower.encode`` can refuse vectors from another encoder. This module is its one
writer.

ENCODER is a sentence-transformers directory (it has modules.json) or a hub name (``org/model``, optionally
``org/model@revision``), which sentence-transformers loads from its own cache or the hub.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from contract import sha256_file

from .data import _read_csv
from .errors import UserError

LAYOUT_VERSION = 2
"""The embedding layout this module writes; part of the embedding cache's key
(spot_runner/embedding_cache.py): a change to what is written (normalisation, dtype, file names)
must bump it."""
SIDES = (("query", "queries.csv", "query_id"), ("doc", "docs.csv", "doc_id"))
ENCODER_FILE = "encoder.json"
"""Which encoder made the vectors: {"version": 1, "name": as given, "identity": encoder_identity()'s}."""
VECTOR_FILES = tuple(f for side, _, _ in SIDES for f in (f"{side}_embeddings.npy", f"{side}_ids.txt"))
EMBEDDING_FILES = (*VECTOR_FILES, ENCODER_FILE)
"""The files an encoding produces (the pairs file is the dataset's, copied beside them)."""
PAIRS_FILES = ("pairs.csv", "pairs.parquet")
MODULES = "modules.json"
"""What makes a directory a sentence-transformers model (SentenceTransformer.save writes it first)."""


def split_hub_name(encoder: str) -> tuple[str, str | None]:
    """``org/model@rev`` -> (``org/model``, ``rev``); no ``@``: revision None (the hub's default branch)."""
    name, at, revision = encoder.partition("@")
    return name, (revision if at and revision else None)


def directory_digest(directory: Path) -> str:
    """The sha256 of a model directory: every file's relative path and content digest, in path order."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(directory).as_posix()}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


def cached_hub_commit(name: str, revision: str | None) -> str | None:
    """The commit ``name`` (at ``revision``, None: the default branch) resolves to in this machine's Hugging
    Face cache, or None when it is not there or huggingface_hub is not installed. No network: the cache's
    ``snapshots/<commit>/`` directory holds the files sentence-transformers loaded."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    # try_to_load_from_cache returns the cached file's path (a str), None or a "known absent" marker.
    found = try_to_load_from_cache(name, MODULES, revision=revision)
    return Path(found).parent.name if isinstance(found, str) else None


UNRESOLVED = "(default branch)"


def encoder_identity(
    encoder: str, commit_of: Callable[[str, str | None], str | None] = cached_hub_commit
) -> tuple[str, str | None]:
    """(identity, note): the string the embedding cache keys on and encoder.json records. A directory: the
    digest of its files. A hub name: the name and its commit when ``commit_of`` resolves it (a pinned
    ``@commit`` and the same commit resolved from the default branch are the same encoder), else the revision
    as asked; ``note`` says when the identity rests on the name only."""
    if Path(encoder).exists():
        return "dir:" + directory_digest(Path(encoder)), None
    name, revision = split_hub_name(encoder)
    if revision:
        return f"hub:{name}@{revision}", None
    commit = commit_of(name, None)
    if commit:
        return f"hub:{name}@{commit}", None
    return f"hub:{name}@{UNRESOLVED}", (
        f"encoder {name} has no @revision and its commit cannot be resolved here: the key uses the name "
        f"only, so a new upload to the hub's default branch would not be noticed. Pinning @revision is "
        f"recommended ({name}@<commit>)."
    )


def read_encoder_record(directory: Path) -> dict | None:
    """encoder.json of an embeddings directory as {"name", "identity"}, or None when there is none."""
    path = Path(directory) / ENCODER_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {"name": str(doc["name"]), "identity": str(doc["identity"])}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"encoder.json is unreadable ({type(err).__name__}: {err}).",
            file=str(path),
            fix="encode the texts again with python -m two_tower.encode_texts, which writes it.",
        ) from None


def read_side(data_dir: Path, file: str, id_column: str) -> tuple[list[str], list[str]]:
    """The ids and texts of queries.csv or docs.csv; a missing file or an empty text is refused."""
    path = data_dir / file
    if not path.is_file():
        raise UserError(
            "the texts file is missing.",
            file=str(path),
            fix=f"write it with the columns {id_column},text (`spot-sweep data import` does), or pass --data "
            "the directory that holds it.",
        )
    frame = _read_csv(path, (id_column, "text"), (id_column, "text"), f"{id_column},text")
    if frame.empty:
        raise UserError("the file has no rows.", file=str(path), fix="add one row per text (id,text).")
    dup = frame[id_column].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise UserError(
            f"the id {frame[id_column][i]!r} appears twice.",
            file=str(path),
            where=f"row {i + 1}",
            fix="give every row its own id.",
        )
    return frame[id_column].tolist(), frame["text"].tolist()


def load_encoder(encoder: str, device: str):
    """The SentenceTransformer for ``encoder`` (a model directory or a hub name) on ``device``."""
    path = Path(encoder)
    if path.exists():
        if not (path / MODULES).is_file():
            raise UserError(
                f"this is not a sentence-transformers model: it has no {MODULES}.",
                file=str(path),
                where="--encoder",
                fix="point it at a directory written by SentenceTransformer.save() (or "
                "`python -m two_tower.tiny_encoder`), or give a hub name such as "
                "sentence-transformers/all-MiniLM-L6-v2.",
            )
    from sentence_transformers import SentenceTransformer

    if path.exists():
        return SentenceTransformer(str(path), device=device)
    name, revision = split_hub_name(encoder)
    try:
        return SentenceTransformer(name, device=device, revision=revision)
    except OSError as e:  # not in the local cache and the hub unreachable, or no such model
        raise UserError(
            f"the model {encoder!r} could not be loaded ({str(e).splitlines()[0][:200]}).",
            where="--encoder",
            fix="give a sentence-transformers directory that exists, or a hub name this machine can download "
            "(or has in its Hugging Face cache).",
        ) from None


def encode(
    data_dir: Path,
    encoder: str,
    out: Path,
    batch_size: int = 256,
    device: str = "auto",
    name: str | None = None,
    identity: str | None = None,
) -> dict:
    """Encode ``data_dir``'s texts into ``out`` (replaced atomically); returns the counts and the speed.
    ``name``/``identity``: what encoder.json records (default: ``encoder`` and encoder_identity(), computed
    after loading, when a hub model is in the local cache); the job runner passes those its cache key used."""
    data_dir, out = Path(data_dir), Path(out)
    pairs = next((data_dir / f for f in PAIRS_FILES if (data_dir / f).is_file()), None)
    if pairs is None:
        raise UserError(
            "neither pairs.csv nor pairs.parquet is there.",
            file=str(data_dir),
            fix="pass --data the dataset directory (`spot-sweep data import` writes pairs.csv).",
        )
    sides = {side: read_side(data_dir, file, column) for side, file, column in SIDES}
    if device == "auto":
        from .runtime import auto_device  # the one place the device is decided

        device, why = auto_device()
        print(f"encode: device {device}: {why} (--device overrides)", flush=True)
    model = load_encoder(encoder, device)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    texts = 0
    start = time.perf_counter()
    for side, (ids, side_texts) in sides.items():
        vectors = model.encode(
            side_texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        np.save(staging / f"{side}_embeddings.npy", vectors)
        (staging / f"{side}_ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        texts += len(side_texts)
    seconds = time.perf_counter() - start
    shutil.copy2(pairs, staging / pairs.name)
    if identity is None:
        identity, note = encoder_identity(encoder)
        if note:
            print(f"encode_texts: {note}", flush=True)
    record = {"version": 1, "name": name or encoder, "identity": identity}
    (staging / ENCODER_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    dim = int(np.load(out / "query_embeddings.npy", mmap_mode="r").shape[1])
    return {"texts": texts, "seconds": seconds, "textsPerSecond": texts / max(seconds, 1e-9), "dim": dim}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m two_tower.encode_texts", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the text dataset (pairs, queries.csv, docs.csv)")
    p.add_argument("--encoder", required=True, help="sentence-transformers directory or hub name[@revision]")
    p.add_argument("--out", required=True, type=Path, help="directory to write the embedding layout to")
    p.add_argument("--batch-size", type=int, default=256, help="texts per encode batch (default 256)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default auto")
    p.add_argument("--encoder-name", help="the name encoder.json records (default: --encoder)")
    p.add_argument("--encoder-identity", help="the identity encoder.json records (default: computed)")
    a = p.parse_args(argv)
    try:
        if a.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1 (got {a.batch_size}).", fix="pass a positive number.")
        stats = encode(a.data, a.encoder, a.out, a.batch_size, a.device, a.encoder_name, a.encoder_identity)
    except UserError as e:
        print(f"encode_texts: {e.message()}", file=sys.stderr)
        return 2
    print(
        f"encoded {stats['texts']} texts into {stats['dim']}-d vectors in {stats['seconds']:.2f} s "
        f"({stats['textsPerSecond']:,.0f} texts/s): {a.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
