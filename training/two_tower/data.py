"""Load and validate a dataset directory (format in the README), stopping at the first problem with a
message that names the file, the row or column and the fix.

Layout: ``pairs.csv`` or ``pairs.parquet`` (query_id, doc_id, relevance[, weak]) and either
``query_embeddings.npy`` + ``query_ids.txt`` + ``doc_embeddings.npy`` + ``doc_ids.txt`` or
``queries.csv`` (query_id,text) + ``docs.csv`` (doc_id,text); texts become hashed word uni+bigrams.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError

TEXT_BUCKETS = 1 << 16
"""Hash buckets for word n-grams (bucket 0 is padding)."""
TEXT_MAX_TOKENS = 64
"""n-grams kept per text (the first ones)."""

_WORD = re.compile(r"\w+")


@dataclass
class Dataset:
    """A validated dataset, ids resolved to row indices."""

    kind: str  # "embeddings" or "text"
    query_ids: list[str]
    doc_ids: list[str]
    query_features: np.ndarray  # float32 [Q, D] (embeddings) or int64 [Q, TEXT_MAX_TOKENS] (bucket ids)
    doc_features: np.ndarray
    pair_query: np.ndarray  # int64 [N] row index into query_ids
    pair_doc: np.ndarray  # int64 [N]
    relevance: np.ndarray  # int64 [N], >= 0
    weak: np.ndarray  # bool [N]
    files: list[Path]

    @property
    def num_pairs(self) -> int:
        return len(self.pair_query)

    @property
    def input_dim(self) -> int:
        return int(self.query_features.shape[1])


def load_dataset(data_dir: Path, max_examples: int | None = None) -> Dataset:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(
            "the data directory does not exist.",
            file=str(data_dir),
            fix="pass --data the directory holding pairs.csv and the embeddings.",
        )
    pairs_path, pairs = _read_pairs(data_dir, max_examples)
    if (data_dir / "query_embeddings.npy").exists() or (data_dir / "doc_embeddings.npy").exists():
        kind = "embeddings"
        q_ids, q_feat, q_files = _read_embeddings(data_dir, "query")
        d_ids, d_feat, d_files = _read_embeddings(data_dir, "doc")
        if q_feat.shape[1] != d_feat.shape[1]:
            raise UserError(
                f"query embeddings have {q_feat.shape[1]} columns but doc embeddings have {d_feat.shape[1]}.",
                file=str(data_dir / "doc_embeddings.npy"),
                where="dimension 1",
                fix="embed queries and documents with the same model so both have the same dimension.",
            )
        files = [pairs_path, *q_files, *d_files]
    elif (data_dir / "queries.csv").exists() or (data_dir / "docs.csv").exists():
        kind = "text"
        q_ids, q_feat, q_path = _read_texts(data_dir / "queries.csv", "query_id")
        d_ids, d_feat, d_path = _read_texts(data_dir / "docs.csv", "doc_id")
        files = [pairs_path, q_path, d_path]
    else:
        raise UserError(
            "no query_embeddings.npy/doc_embeddings.npy and no queries.csv/docs.csv.",
            file=str(data_dir),
            fix="add the embedding files with their *_ids.txt, or queries.csv and docs.csv "
            "(columns id,text).",
        )
    pair_query = _resolve(
        pairs, pairs_path, "query_id", q_ids, "query_ids.txt" if kind == "embeddings" else "queries.csv"
    )
    pair_doc = _resolve(
        pairs, pairs_path, "doc_id", d_ids, "doc_ids.txt" if kind == "embeddings" else "docs.csv"
    )
    return Dataset(
        kind,
        q_ids,
        d_ids,
        q_feat,
        d_feat,
        pair_query,
        pair_doc,
        pairs["relevance"].to_numpy(np.int64),
        pairs["weak"].to_numpy(bool),
        files,
    )


def _row_name(path: Path, index: int) -> str:
    # csv: the line number as an editor shows it (header is line 1); parquet: the 1-based row.
    return f"line {index + 2}" if path.suffix == ".csv" else f"row {index + 1}"


def _reject_first(bad: object, path: Path, column: str, problem: Callable[[int], str], fix: str) -> None:
    """Stop at the first row where ``bad`` is true, naming the file, the row, the column and the fix."""
    rows = np.flatnonzero(np.asarray(bad))
    if len(rows):
        i = int(rows[0])
        raise UserError(problem(i), file=str(path), where=f"{_row_name(path, i)}, column {column}", fix=fix)


def _read_pairs(data_dir: Path, max_examples: int | None) -> tuple[Path, pd.DataFrame]:
    csv_path, parquet_path = data_dir / "pairs.csv", data_dir / "pairs.parquet"
    if csv_path.exists():
        path = csv_path
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=max_examples)
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame()
        except pd.errors.ParserError as err:
            raise UserError(
                f"the file is not valid CSV ({err}).",
                file=str(path),
                fix="write one row per line: query_id,doc_id,relevance[,weak].",
            ) from None
    elif parquet_path.exists():
        path = parquet_path
        frame = pd.read_parquet(path)
        if max_examples is not None:
            frame = frame.iloc[:max_examples]
        frame = frame.astype({c: str for c in frame.columns if c in ("query_id", "doc_id")})
    else:
        raise UserError(
            "no pairs.csv or pairs.parquet.",
            file=str(data_dir),
            fix="add pairs.csv with the columns query_id,doc_id,relevance (and optional weak).",
        )
    for column in ("query_id", "doc_id", "relevance"):
        if column not in frame.columns:
            raise UserError(
                f"column {column!r} is missing "
                f"(columns found: {', '.join(map(str, frame.columns)) or 'none'}).",
                file=str(path),
                where="header",
                fix="name the columns query_id,doc_id,relevance[,weak].",
            )
    if len(frame) == 0:
        raise UserError(
            "the dataset is empty: the pairs file has no rows.",
            file=str(path),
            fix="add at least one row query_id,doc_id,relevance per judged pair.",
        )
    frame = frame.reset_index(drop=True)
    relevance = pd.to_numeric(frame["relevance"], errors="coerce")
    fix = "use integers >= 0 (0 = not relevant)."
    _reject_first(
        relevance.isna() | (relevance != np.floor(relevance)),
        path,
        "relevance",
        lambda i: f"relevance {frame['relevance'][i]!r} is not an integer.",
        fix,
    )
    _reject_first(
        relevance < 0, path, "relevance", lambda i: f"relevance {int(relevance[i])} is negative.", fix
    )
    frame["relevance"] = relevance.astype(np.int64)
    if "weak" in frame.columns:
        weak = pd.to_numeric(frame["weak"].replace("", "0"), errors="coerce")
        _reject_first(
            ~weak.isin([0, 1]),
            path,
            "weak",
            lambda i: f"weak {frame['weak'][i]!r} is not 0 or 1.",
            "use 1 for a weak label, 0 (or empty) otherwise.",
        )
        frame["weak"] = weak.astype(bool)
    else:
        frame["weak"] = False
    if not (frame["relevance"] > 0).any():
        raise UserError(
            "no row has relevance > 0, so there is nothing to learn from.",
            file=str(path),
            where="column relevance",
            fix="mark relevant pairs with relevance >= 1.",
        )
    return path, frame


def _read_ids(path: Path) -> list[str]:
    if not path.exists():
        raise UserError(
            "the id file is missing.",
            file=str(path),
            fix=f"write one id per line, in the row order of "
            f"{path.name.replace('_ids.txt', '_embeddings.npy')}.",
        )
    ids = path.read_text().splitlines()
    if ids and ids[-1] == "":
        ids.pop()
    seen: dict[str, int] = {}
    for line, value in enumerate(ids, start=1):
        if value in seen:
            raise UserError(
                f"id {value!r} appears twice (lines {seen[value]} and {line}).",
                file=str(path),
                where=f"line {line}",
                fix="give every row its own id.",
            )
        seen[value] = line
    return ids


def _read_embeddings(data_dir: Path, side: str) -> tuple[list[str], np.ndarray, list[Path]]:
    emb_path, ids_path = data_dir / f"{side}_embeddings.npy", data_dir / f"{side}_ids.txt"
    if not emb_path.exists():
        raise UserError(
            "the embedding file is missing.",
            file=str(emb_path),
            fix=f"save a float32 array [n_{side}s, dim] with numpy.save, one row per line of "
            f"{ids_path.name}.",
        )
    try:
        emb = np.load(emb_path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserError(
            f"not a readable .npy array ({err}).",
            file=str(emb_path),
            fix="write it with numpy.save(path, array.astype('float32')).",
        ) from None
    if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.floating):
        raise UserError(
            f"expected a 2-D float array, found shape {emb.shape} dtype {emb.dtype}.",
            file=str(emb_path),
            fix=f"save a float32 array of shape [n_{side}s, dim].",
        )
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise UserError(
            f"row {i} (0-based) contains NaN or inf ({int((~finite).sum())} such rows in all).",
            file=str(emb_path),
            where=f"row {i}",
            fix="re-embed those texts or drop them and their pairs.",
        )
    ids = _read_ids(ids_path)
    if len(ids) != emb.shape[0]:
        raise UserError(
            f"{len(ids)} ids but {emb.shape[0]} embedding rows in {emb_path.name}.",
            file=str(ids_path),
            fix=f"write exactly one id per row of {emb_path.name}, in the same order.",
        )
    return ids, emb, [emb_path, ids_path]


def hash_ngrams(text: str) -> list[int]:
    """Bucket ids (1..TEXT_BUCKETS-1) of the lower-cased word unigrams and bigrams of a text."""
    words = _WORD.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    return [zlib.crc32(g.encode()) % (TEXT_BUCKETS - 1) + 1 for g in grams[:TEXT_MAX_TOKENS]]


def _read_texts(path: Path, id_column: str) -> tuple[list[str], np.ndarray, Path]:
    if not path.exists():
        raise UserError(
            "the text file is missing.", file=str(path), fix=f"write a CSV with the columns {id_column},text."
        )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in (id_column, "text"):
        if column not in frame.columns:
            raise UserError(
                f"column {column!r} is missing.",
                file=str(path),
                where="header",
                fix=f"name the columns {id_column},text.",
            )
    dup = frame[id_column].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise UserError(
            f"id {frame[id_column][i]!r} appears twice.",
            file=str(path),
            where=f"line {i + 2}",
            fix="give every row its own id.",
        )
    tokens = np.zeros((len(frame), TEXT_MAX_TOKENS), dtype=np.int64)
    for row, text in enumerate(frame["text"]):
        ids = hash_ngrams(text)
        tokens[row, : len(ids)] = ids
    return frame[id_column].tolist(), tokens, path


def _resolve(pairs: pd.DataFrame, pairs_path: Path, column: str, ids: list[str], id_file: str) -> np.ndarray:
    index = pd.Index(ids).get_indexer(pairs[column])
    missing = index < 0
    _reject_first(
        missing,
        pairs_path,
        column,
        lambda i: (
            f"{column} {pairs[column][i]!r} has no entry in {id_file} ({int(missing.sum())} rows like this)."
        ),
        f"add it (and its embedding or text) to {id_file}, or remove the rows that use it.",
    )
    return index.astype(np.int64)


def file_digests(files: list[Path]) -> dict[str, str]:
    """sha256 of each data file, keyed by file name (results.json ``data``)."""
    out = {}
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out[path.name] = f"sha256:{digest.hexdigest()}"
    return out
