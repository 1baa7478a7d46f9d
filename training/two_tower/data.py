"""Load and validate a dataset directory (format in the README), stopping at the first problem with a
message that names the file, the row or column and the fix.

Layout: ``pairs.csv`` or ``pairs.parquet`` (query_id, doc_id, relevance[, weak][, weight]) and either
``query_embeddings.npy`` + ``query_ids.txt`` + ``doc_embeddings.npy`` + ``doc_ids.txt`` or
``queries.csv`` (query_id,text) + ``docs.csv`` (doc_id,text); texts become hashed word uni+bigrams.
"""

from __future__ import annotations

import contextlib
import csv
import re
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import contract

from .errors import UserError, quote

TEXT_BUCKETS = 1 << 16
"""Hash buckets for word n-grams (bucket 0 is padding)."""
TEXT_MAX_TOKENS = 64
"""n-grams kept per text (the first ones)."""

MAX_EMBEDDING_VALUE = 1e15
"""Largest |value| accepted in an embedding: the squares (norms, LayerNorm) of dim such values stay far below
float32's maximum, where a larger one would overflow to inf and end as a NaN loss ("training diverged")."""
MAX_RELEVANCE = 2**31 - 1
"""Largest relevance accepted: gains and their sums stay exact integers in float64 (graded labels are 0-4)."""
MAX_WEIGHT = 1e6
"""Largest sample weight accepted. Weights are relative (the loss is a weighted mean), so nothing needs more;
the cap keeps a micro-batch's float32 sum of weight x loss far from overflowing to inf."""

_WORD = re.compile(r"\w+")
_PANDAS_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_PANDAS_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_UTF8_FIX = (
    "save it as UTF-8 (for example: iconv -f latin1 -t utf-8 old > new, naming the encoding it is in)."
)


@dataclass
class Dataset:
    """A validated dataset, ids resolved to row indices."""

    kind: str  # "embeddings" or "text"
    # Ids in row order, as a pandas Index of str (pyarrow-backed: one buffer, not one Python object per id;
    # ids[i] is a str, len() and iteration work as on a list, get_indexer resolves ids in bulk).
    query_ids: pd.Index
    doc_ids: pd.Index
    # float32 [Q, D] (embeddings: C-contiguous, memory-mapped from the .npy file when it is float32 already,
    # so pages are read on use and shared by every process on the machine) or int64 [Q, TEXT_MAX_TOKENS]
    # (bucket ids).
    query_features: np.ndarray
    doc_features: np.ndarray
    pair_query: np.ndarray  # int64 [N] row index into query_ids
    pair_doc: np.ndarray  # int64 [N]
    relevance: np.ndarray  # int64 [N], >= 0
    weak: np.ndarray  # bool [N]
    files: list[Path]
    # float32 [N], >= 0: the row's weight in the training loss (the pairs file's optional weight column);
    # None (a Dataset built in code) means 1 for every row. Evaluation never reads it.
    weight: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        if self.weight is None:
            self.weight = np.ones(len(self.pair_query), dtype=np.float32)

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
            "this is a file, not a directory." if data_dir.exists() else "the data directory does not exist.",
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
        pairs["weight"].to_numpy(np.float32),
    )


def _row_name(path: Path, index: int) -> str:
    # csv: the line number as an editor shows it (header is line 1); parquet: the 1-based row.
    return f"line {_csv_line(path, index)[0]}" if path.suffix == ".csv" else f"row {index + 1}"


def _reject_first(bad: object, path: Path, column: str, problem: Callable[[int], str], fix: str) -> None:
    """Stop at the first row where ``bad`` is true, naming the file, the row, the column and the fix."""
    rows = np.flatnonzero(np.asarray(bad))
    if len(rows):
        i = int(rows[0])
        raise UserError(problem(i), file=str(path), where=f"{_row_name(path, i)}, column {column}", fix=fix)


def _read_pairs(data_dir: Path, max_examples: int | None) -> tuple[Path, pd.DataFrame]:
    csv_path, parquet_path = data_dir / "pairs.csv", data_dir / "pairs.parquet"
    required = ("query_id", "doc_id", "relevance")
    if csv_path.exists():
        path = csv_path
        frame = _read_csv(path, required, required, "query_id,doc_id,relevance[,weak][,weight]")
    elif parquet_path.exists():
        path = parquet_path
        frame = _read_parquet(path)
        _require_columns(frame, path, required, "query_id,doc_id,relevance[,weak][,weight]")
        for column in ("query_id", "doc_id"):
            _reject_first(
                frame[column].isna(),
                path,
                column,
                lambda i, column=column: f"{column} is null.",
                "fill it in, or remove the row.",
            )
        frame = frame.astype({c: str for c in frame.columns if c in ("query_id", "doc_id")})
    else:
        raise UserError(
            "no pairs.csv or pairs.parquet.",
            file=str(data_dir),
            fix="add pairs.csv with the columns query_id,doc_id,relevance (and optional weak, weight).",
        )
    if len(frame) == 0:
        raise UserError(
            "the dataset is empty: the pairs file has no rows.",
            file=str(path),
            fix="add at least one row query_id,doc_id,relevance per judged pair.",
        )
    frame = _first_examples(frame, path, max_examples)
    relevance = pd.to_numeric(frame["relevance"], errors="coerce")
    fix = "use integers >= 0 (0 = not relevant)."
    _reject_first(
        relevance.isna() | ~np.isfinite(relevance) | (relevance != np.floor(relevance)),
        path,
        "relevance",
        lambda i: f"relevance {quote(frame['relevance'][i])} is not an integer.",
        fix,
    )
    _reject_first(
        relevance < 0, path, "relevance", lambda i: f"relevance {int(relevance[i])} is negative.", fix
    )
    _reject_first(
        relevance > MAX_RELEVANCE,
        path,
        "relevance",
        lambda i: f"relevance {quote(frame['relevance'][i])} is too large (at most {MAX_RELEVANCE:,}).",
        "use small integers for the grades (0 = not relevant, typically up to 3 or 4).",
    )
    frame["relevance"] = relevance.astype(np.int64)
    if "weak" in frame.columns:
        weak = pd.to_numeric(frame["weak"].replace("", "0"), errors="coerce")
        _reject_first(
            ~weak.isin([0, 1]),
            path,
            "weak",
            lambda i: f"weak {quote(frame['weak'][i])} is not 0 or 1.",
            "use 1 for a weak label, 0 (or empty) otherwise.",
        )
        frame["weak"] = weak.astype(bool)
    else:
        frame["weak"] = False
    frame["weight"] = _read_weights(frame, path)
    if not (frame["relevance"] > 0).any():
        raise UserError(
            "no row has relevance > 0, so there is nothing to learn from.",
            file=str(path),
            where="column relevance",
            fix="mark relevant pairs with relevance >= 1.",
        )
    if not (frame["weight"][frame["relevance"] > 0] > 0).any():
        raise UserError(
            "every row with relevance > 0 has weight 0, so there is nothing to learn from.",
            file=str(path),
            where="column weight",
            fix="give the rows to train on a weight > 0 (or leave the column out: every row weighs 1).",
        )
    return path, frame


def _read_weights(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The optional ``weight`` column as float32: finite, 0 to MAX_WEIGHT; an empty cell (CSV) or a null
    (Parquet) is 1, as is every row when there is no such column."""
    if "weight" not in frame.columns:
        return np.ones(len(frame), dtype=np.float32)
    raw = frame["weight"]
    empty = raw.isna() | (raw.astype(str).str.strip() == "")
    weight = pd.to_numeric(raw.where(~empty, 1), errors="coerce").astype(np.float64)
    bad = weight.isna() | ~np.isfinite(weight)
    fix = f"use a number from 0 to {MAX_WEIGHT:.0e} (empty = 1); a row's weight scales its term in the loss."
    _reject_first(
        bad,
        path,
        "weight",
        lambda i: f"weight {quote(raw[i])} is not a finite number ({int(bad.sum()):,} rows like this).",
        fix,
    )
    _reject_first(
        weight < 0,
        path,
        "weight",
        lambda i: f"weight {quote(raw[i])} is negative ({int((weight < 0).sum()):,} rows like this).",
        fix,
    )
    _reject_first(
        weight > MAX_WEIGHT,
        path,
        "weight",
        lambda i: (
            f"weight {quote(raw[i])} is above {MAX_WEIGHT:.0e} "
            f"({int((weight > MAX_WEIGHT).sum()):,} rows like this)."
        ),
        "scale the weights down: only their ratios matter (the loss is a weighted mean).",
    )
    return weight.to_numpy(np.float32)


def _first_examples(frame: pd.DataFrame, path: Path, examples: int | None) -> pd.DataFrame:
    """The first ``examples`` rows. More than the file has is refused, not capped: in a sweep over data sizes,
    two configs asking for different sizes would otherwise train on the same rows and rank as different."""
    if examples is None:
        return frame
    if examples > len(frame):
        raise UserError(
            f"examples is {examples:,} (job.json's examples or --max-examples) but this file has only "
            f"{len(frame):,} rows, so the run would use fewer rows than it says.",
            file=str(path),
            fix=f"lower examples to {len(frame):,} or less (or leave it out to use every row), "
            "or give more data.",
        )
    return frame.iloc[:examples].reset_index(drop=True)


def _read_csv(path: Path, columns: tuple[str, ...], non_empty: tuple[str, ...], layout: str) -> pd.DataFrame:
    """Every cell of a CSV file as the text it holds, the header's names as columns, blank lines skipped.
    Refuses, naming the line: bytes that are not UTF-8 (a UTF-8 BOM is fine), a quote never closed, a row
    with more fields than the header, or fewer (when that leaves a ``non_empty`` column empty)."""
    try:
        # header=None: the header is read as a row, so a data row with more fields than it is an error
        # (with header=0, pandas silently makes the first column the index when every row has one more).
        # keep_default_na=False: every cell stays its text, '' when empty, never NaN.
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise UserError(
            "the file is empty.", file=str(path), fix=f"write the header line {layout} and one row per line."
        ) from None
    except pd.errors.ParserError as err:
        raise _not_csv(path, str(err), layout) from None
    except OSError as err:
        raise _unreadable(path, err) from None
    header = [str(name) for name in raw.iloc[0]]
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = header
    first: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in first:
            raise UserError(
                f"column {quote(name)} appears twice (columns {first[name]} and {number}).",
                file=str(path),
                where="header",
                fix=f"give each column one name: {layout}.",
            )
        first[name] = number
    _require_columns(frame, path, columns, layout)
    empty = np.zeros(len(frame), dtype=bool)
    for column in non_empty:
        empty |= (frame[column] == "").to_numpy()
    if empty.any():
        # pandas fills the fields a short row leaves out with '', so look at the line itself.
        i = int(np.flatnonzero(empty)[0])
        line, fields = _csv_line(path, i)
        if 0 < fields < len(header):
            raise _field_count(path, line, fields, header)
        column = next(c for c in non_empty if frame[c][i] == "")
        raise UserError(
            f"{column} is empty.",
            file=str(path),
            where=f"line {line}, column {column}",
            fix="fill it in, or remove the row.",
        )
    return frame


def _require_columns(frame: pd.DataFrame, path: Path, columns: tuple[str, ...], layout: str) -> None:
    for column in columns:
        if column not in frame.columns:
            found = ", ".join(quote(str(c), 40) for c in frame.columns[:20]) or "none"
            more = f" and {len(frame.columns) - 20:,} more" if len(frame.columns) > 20 else ""
            raise UserError(
                f"column {column!r} is missing (columns found: {found}{more}).",
                file=str(path),
                where="header",
                fix=f"name the columns {layout}.",
            )


def _field_count(path: Path, line: int, fields: int, header: list[str]) -> UserError:
    return UserError(
        f"this row has {fields} field{'' if fields == 1 else 's'} but the header has {len(header)} "
        f"({quote(','.join(header))}).",
        file=str(path),
        where=f"line {line}",
        fix="give every row the header's fields, comma-separated (put a field holding a comma in "
        'double quotes: "a,b").',
    )


def _not_csv(path: Path, message: str, layout: str) -> UserError:
    """The pandas parser's complaint as a sentence, with the line as an editor counts it."""
    fields = _PANDAS_FIELDS.search(message)
    if fields:
        expected = int(fields.group(1))
        with _csv_rows(path) as rows:
            header = next(rows)[2]
            for line, count, _ in rows:
                if count != expected:
                    return _field_count(path, line, count, header)
        return _field_count(path, int(fields.group(2)), int(fields.group(3)), header)
    open_quote = _PANDAS_OPEN_QUOTE.search(message)
    if open_quote:
        # The csv module reads an unclosed quote to the end of the file: its last row is where it opens.
        line = int(open_quote.group(1)) + 1
        with _csv_rows(path) as rows:
            for row in rows:
                line = row[0]
        return UserError(
            "a quoted field opened on this line is never closed, so the rest of the file would be one field.",
            file=str(path),
            where=f"line {line}",
            fix='close the quote, write a " inside a quoted field as "", or remove the stray ".',
        )
    return UserError(
        f"the file is not valid CSV ({quote(message.strip(), 200)}).",
        file=str(path),
        fix=f"write the header line {layout} and then one row per line.",
    )


@contextlib.contextmanager
def _csv_rows(path: Path) -> Iterator[Iterator[tuple[int, int, list[str]]]]:
    """(line it starts on, field count, header) of each non-blank row, header first, as the csv module reads
    them: only on the way to an error message, to name the line the way an editor counts lines (pandas
    counts rows, and a quoted field can span lines)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # the default 131,072 would stop at a long id before its line
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            yield _rows_of(csv.reader(fh))
    finally:
        csv.field_size_limit(limit)


def _rows_of(reader) -> Iterator[tuple[int, int, list[str]]]:
    start, header = 1, None
    for fields in reader:
        if fields:
            header = header or fields
            yield start, len(fields), header
        start = reader.line_num + 1


def _csv_line(path: Path, row: int) -> tuple[int, int]:
    """Line number and field count of data row ``row`` (0-based, as pandas numbers them)."""
    with _csv_rows(path) as rows:
        for n, (line, fields, _) in enumerate(rows):
            if n == row + 1:
                return line, fields
    return row + 2, 0


def _not_utf8(path: Path) -> UserError:
    """Where the first byte that is not UTF-8 is, found by decoding block by block (the file may be large)."""
    line, offset, carry = 1, 0, b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            data = carry + block
            try:
                data.decode("utf-8")
                good, carry = data, b""
            except UnicodeDecodeError as err:
                if block and err.reason == "unexpected end of data":  # a character cut by the block's end
                    good, carry = data[: err.start], data[err.start :]
                else:
                    at = line + data.count(b"\n", 0, err.start)
                    return UserError(
                        f"the file is not UTF-8 text: byte {data[err.start]:#04x} "
                        f"(byte {offset + err.start + 1:,} of the file) is not valid UTF-8.",
                        file=str(path),
                        where=f"line {at}",
                        fix=_UTF8_FIX,
                    )
            if not block:
                return UserError("the file is not UTF-8 text.", file=str(path), fix=_UTF8_FIX)
            line += good.count(b"\n")
            offset += len(good)


def _unreadable(path: Path, err: OSError) -> UserError:
    return UserError(
        f"cannot read it: {(err.strerror or str(err)).lower()}.",
        file=str(path),
        fix="make it a regular file this user can read.",
    )


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow  # pandas' Parquet engine (requirements.txt); only to name its errors

    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, ValueError, OSError) as err:
        raise UserError(
            f"it is not a readable Parquet file ({quote(str(err), 160)}).",
            file=str(path),
            fix="write it again (pandas: frame.to_parquet(path)); a copy cut short or damaged reads like "
            "this. Or give pairs.csv instead.",
        ) from None


def _read_ids(path: Path) -> pd.Index:
    if not path.exists():
        raise UserError(
            "the id file is missing.",
            file=str(path),
            fix=f"write one id per line, in the row order of "
            f"{path.name.replace('_ids.txt', '_embeddings.npy')}.",
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a UTF-8 BOM at the start is not part of an id
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as err:
        raise _unreadable(path, err) from None
    lines = text.split("\n")
    del text
    if lines and lines[-1] == "":
        lines.pop()
    # One pyarrow-backed buffer instead of a list of str; the checks below are vectorised (no dict of ids).
    ids = pd.Index(lines, dtype="str").str.removesuffix("\r")  # "\r": Windows line endings
    del lines
    empty = np.flatnonzero(np.asarray(ids == ""))
    dup = np.flatnonzero(np.asarray(ids.duplicated()))
    if len(empty) and (not len(dup) or empty[0] < dup[0]):
        raise UserError(
            "the line is empty.",
            file=str(path),
            where=f"line {int(empty[0]) + 1}",
            fix="write one id on every line, in the row order of the embeddings; no blank lines.",
        )
    if len(dup):
        i = int(dup[0])
        value = ids[i]
        first = int(np.flatnonzero(np.asarray(ids == value))[0]) + 1
        raise UserError(
            f"id {quote(value)} appears twice (lines {first} and {i + 1}).",
            file=str(path),
            where=f"line {i + 1}",
            fix="give every row its own id.",
        )
    return ids


def _load_npy(path: Path, side: str) -> np.ndarray:
    """The array in a .npy file, after checking its header: an .npz, a pickle, text, an object array or a
    file cut short each get their own sentence (np.load would call most of them "pickled data")."""
    fix = f"save a float32 array [n_{side}s, dim] with numpy.save(path, array.astype('float32'))."
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "created on Python 2": the message stays one line
            start = fh.read(16)
            fh.seek(0)
            header = _npy_header(fh) if start.startswith(b"\x93NUMPY") else None
            offset = fh.tell()
    except OSError as err:
        raise _unreadable(path, err) from None
    if start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise UserError(
            "this is an .npz archive (numpy.savez), not a .npy file.",
            file=str(path),
            fix="save the one array with numpy.save(path, array) instead of numpy.savez; or rename this "
            "file to .npz and save the array it holds: numpy.save(path, numpy.load('x.npz')['<name>']).",
        )
    if not start.startswith(b"\x93NUMPY"):
        pickled = start[:1] == b"\x80" and start[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        raise UserError(
            "it is a Python pickle, not a NumPy .npy file."
            if pickled
            else f"it is not a NumPy .npy file: it starts with {quote(start)}, not with the .npy signature "
            "\\x93NUMPY.",
            file=str(path),
            fix=fix,
        )
    if isinstance(header, str):
        raise UserError(f"its .npy header is damaged ({header}).", file=str(path), fix=fix)
    if header is not None:
        shape, dtype = header
        if dtype.hasobject:
            raise UserError(
                f"it holds Python objects (dtype {dtype}), not numbers.",
                file=str(path),
                fix=f"save a float array of shape [n_{side}s, dim]: "
                "numpy.save(path, numpy.asarray(values, dtype='float32')).",
            )
        _check_embedding_shape(path, side, shape, dtype)
        need = int(np.prod(shape)) * dtype.itemsize
        have = path.stat().st_size - offset
        if have < need:
            raise UserError(
                f"the file is truncated: its header says shape {shape} {dtype} ({need:,} bytes of data) but "
                f"only {have:,} bytes follow it.",
                file=str(path),
                fix=f"copy it again, or write it again; {fix}",
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # mmap_mode "c" (copy-on-write): nothing is read until used, and the array stays writable, so
            # torch.from_numpy takes it without a copy or a warning; it never writes to it.
            emb = np.load(path, mmap_mode="c", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(
            f"not a readable .npy array ({quote(str(err), 160)}).", file=str(path), fix=fix
        ) from None
    _check_embedding_shape(path, side, emb.shape, emb.dtype)
    return np.asarray(emb)  # a plain ndarray view of the map (np.memmap's subclass would leak into results)


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype] | str | None:
    """(shape, dtype) from a .npy header; a string saying why when it is damaged; None for a version
    this code does not parse itself (np.load then reads it)."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            fh.seek(0)
            return None
    except Exception as err:  # numpy parses the header as a Python literal: damage fails in many ways
        return quote(f"{type(err).__name__}: {err}", 120)
    return tuple(shape), np.dtype(dtype)


def _check_embedding_shape(path: Path, side: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if len(shape) != 2 or 0 in shape or not np.issubdtype(dtype, np.floating):
        raise UserError(
            f"expected a 2-D float array with at least one row and one column, found shape {shape} "
            f"dtype {dtype}.",
            file=str(path),
            fix=f"save a float32 array of shape [n_{side}s, dim].",
        )


def _read_embeddings(data_dir: Path, side: str) -> tuple[pd.Index, np.ndarray, list[Path]]:
    emb_path, ids_path = data_dir / f"{side}_embeddings.npy", data_dir / f"{side}_ids.txt"
    if not emb_path.exists():
        raise UserError(
            "the embedding file is missing.",
            file=str(emb_path),
            fix=f"save a float32 array [n_{side}s, dim] with numpy.save, one row per line of "
            f"{ids_path.name}.",
        )
    emb = _as_float32(_load_npy(emb_path, side))
    _check_values(emb, emb_path)
    ids = _read_ids(ids_path)
    if len(ids) != emb.shape[0]:
        raise UserError(
            f"{len(ids)} ids but {emb.shape[0]} embedding rows in {emb_path.name}.",
            file=str(ids_path),
            fix=f"write exactly one id per row of {emb_path.name}, in the same order.",
        )
    return ids, emb, [emb_path, ids_path]


CHECK_BLOCK_BYTES = 1 << 26
"""Bytes of an embedding file checked (or converted) at once: bounds the temporary arrays to this size
whatever the file's size, instead of a bool and a float copy of the whole array."""


def _block_rows(emb: np.ndarray) -> int:
    return max(1, CHECK_BLOCK_BYTES // max(1, emb.shape[1] * 4))


def _as_float32(emb: np.ndarray) -> np.ndarray:
    """The array as C-contiguous float32: the (memory-mapped) array itself when it is one already, else one
    converted copy, written block by block (no float64 temporary of the whole array)."""
    if emb.dtype == np.float32 and emb.flags.c_contiguous:
        return emb
    out = np.empty(emb.shape, dtype=np.float32)
    rows = _block_rows(emb)
    for start in range(0, emb.shape[0], rows):
        out[start : start + rows] = emb[start : start + rows]
    return out


def _check_values(emb: np.ndarray, emb_path: Path) -> None:
    """Refuse NaN/inf and values too large to train on, block by block (the first row and the count)."""
    rows = _block_rows(emb)
    bad_first, bad_count, huge_first, huge_count = -1, 0, -1, 0
    for start in range(0, emb.shape[0], rows):
        block = emb[start : start + rows]
        bad = ~np.isfinite(block).all(axis=1)
        huge = ~bad & (np.maximum(block.max(axis=1), -block.min(axis=1)) >= MAX_EMBEDDING_VALUE)
        if bad_first < 0 and bad.any():
            bad_first = start + int(np.flatnonzero(bad)[0])
        if huge_first < 0 and huge.any():
            huge_first = start + int(np.flatnonzero(huge)[0])
        bad_count += int(bad.sum())
        huge_count += int(huge.sum())
    if bad_count:
        i = bad_first
        raise UserError(
            f"row {i} (0-based) contains NaN or inf ({bad_count} such rows in all).",
            file=str(emb_path),
            where=f"row {i}",
            fix="re-embed those texts or drop them and their pairs.",
        )
    if huge_count:
        i = huge_first
        raise UserError(
            f"row {i} (0-based) holds {float(np.abs(emb[i]).max()):.3g}, too large to train on: the towers "
            f"square it (|values| must stay below {MAX_EMBEDDING_VALUE:.0e}; {huge_count} such rows).",
            file=str(emb_path),
            where=f"row {i}",
            fix="check how the file was written (values like this mostly mean the wrong dtype or damaged "
            "bytes), or scale the embeddings down.",
        )


def hash_ngrams(text: str) -> list[int]:
    """Bucket ids (1..TEXT_BUCKETS-1) of the lower-cased word unigrams and bigrams of a text."""
    words = _WORD.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    return [zlib.crc32(g.encode()) % (TEXT_BUCKETS - 1) + 1 for g in grams[:TEXT_MAX_TOKENS]]


def _read_texts(path: Path, id_column: str) -> tuple[pd.Index, np.ndarray, Path]:
    if not path.exists():
        raise UserError(
            "the text file is missing.", file=str(path), fix=f"write a CSV with the columns {id_column},text."
        )
    frame = _read_csv(path, (id_column, "text"), (id_column,), f"{id_column},text")
    dup = frame[id_column].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((frame[id_column] == frame[id_column][i]).to_numpy())[0])
        where = _row_name(path, i)
        raise UserError(
            f"id {quote(frame[id_column][i])} appears twice ({_row_name(path, first)} and {where}).",
            file=str(path),
            where=where,
            fix="give every row its own id.",
        )
    tokens = np.zeros((len(frame), TEXT_MAX_TOKENS), dtype=np.int64)
    for row, text in enumerate(frame["text"]):
        ids = hash_ngrams(text)
        tokens[row, : len(ids)] = ids
    return pd.Index(frame[id_column], dtype="str"), tokens, path


def _resolve(pairs: pd.DataFrame, pairs_path: Path, column: str, ids: pd.Index, id_file: str) -> np.ndarray:
    index = ids.get_indexer(pairs[column])
    missing = index < 0
    _reject_first(
        missing,
        pairs_path,
        column,
        lambda i: (
            f"{column} {quote(pairs[column][i])} has no entry in {id_file} "
            f"({int(missing.sum())} row{'' if missing.sum() == 1 else 's'} like this)."
        ),
        f"add it (and its embedding or text) to {id_file}, or remove the rows that use it.",
    )
    return index.astype(np.int64)


def file_digests(files: list[Path]) -> dict[str, str]:
    """sha256 of each data file, keyed by file name (results.json ``data``)."""
    out = {}
    for path in files:
        out[path.name] = f"sha256:{contract.sha256_file(path)}"
    return out
