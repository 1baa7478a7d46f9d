"""Turn one table of (query text, document text, label[, weak flag | weak score]) rows into the trainer's text
layout: ``pairs.csv`` (query_id,doc_id,relevance,weak,weight) + ``queries.csv`` + ``docs.csv`` (id,text).

    python -m two_tower.import_data FILE --out DIR [--query COL] [--doc COL] [--label COL]
        [--weak COL | --weak-score COL] [--query-id COL] [--doc-id COL] [--chunk-rows N]

FILE is CSV or Parquet, read in chunks (``--chunk-rows``, default 200,000) so a 5M-row file is never held
whole: only the ids already written are kept, to write each query and document once.

Ids: the ``--query-id``/``--doc-id`` columns when given (the same id with two different texts is refused),
else ``q``/``d`` + the first 16 hex digits of the text's sha256: stable across runs and files, and the same
text is one id.

Labels: an integer >= 0 (a float that is a whole number, such as 1.0, too). ``--weak COL``: 0/1 or
true/false (empty = 0), the row is trained on, never evaluated. ``--weak-score COL``: a float confidence;
a row with a score gets weak=1 and weight=score, a row without (empty) weak=0 and weight=1. A weak score is a
**sample weight, not a graded relevance**: graded relevance only changes nDCG, which is computed on judged
(non-weak) rows alone, so a score as relevance would never be used; as a weight it scales how much the row
pulls in the contrastive loss, which is what a confidence means. A label such as 0.73 in the label column is
refused, pointing to --weak-score.

Every bad row is reported (the first 20, then a count), as ``error: FILE, line N, column C: problem. Fix:
...``; exit 2 and nothing written. Output is written to a temporary directory beside DIR and renamed to DIR
at the end, so DIR either holds a complete dataset or is untouched.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .data import MAX_RELEVANCE, MAX_WEIGHT, _csv_rows, _not_csv, _not_utf8
from .errors import UserError, quote

MAX_REPORTED = 20
"""Bad rows printed in full; the rest are counted."""
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no", ""}


class BadRows(Exception):
    """Rows the import refuses: (0-based data row, column, problem, fix), and how many in all."""

    def __init__(self, rows: list[tuple[int, str, str, str]], total: int):
        super().__init__(f"{total} bad rows")
        self.rows, self.total = rows, total


def _id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:16]


def _chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's rows as text cells, chunk by chunk; a missing column is a UserError naming those found."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise UserError(
                f"it is not a readable Parquet file ({quote(str(err), 160)}).",
                file=str(path),
                fix="write it again (pandas: frame.to_parquet(path)), or give a CSV.",
            ) from None
        _check_columns(path, list(handle.schema_arrow.names), columns)
        for batch in handle.iter_batches(batch_size=chunk_rows, columns=columns):
            frame = batch.to_pandas()
            yield frame.astype(object).where(frame.notna(), "").astype(str)
        return
    try:
        reader = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, encoding="utf-8", chunksize=chunk_rows
        )
        header: list[str] | None = None
        for raw in reader:
            if header is None:
                header = [str(c) for c in raw.iloc[0]]
                _check_columns(path, header, columns)
                raw = raw.iloc[1:]
            raw.columns = header
            yield raw[columns].reset_index(drop=True)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise UserError(
            "the file is empty.", file=str(path), fix="give a header line and one row per line."
        ) from None
    except pd.errors.ParserError as err:
        raise _not_csv(path, str(err), ",".join(columns)) from None


def _check_columns(path: Path, found: list[str], wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        names = ", ".join(quote(c, 40) for c in found[:20])
        raise UserError(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} missing "
            f"(columns found: {names}).",
            file=str(path),
            where="header",
            fix="name the columns with --query, --doc, --label (and --weak/--weak-score, --query-id, "
            "--doc-id).",
        )


def _labels(cells: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    values = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(values) & (values == np.floor(values)) & (values >= 0) & (values <= MAX_RELEVANCE)
    problems = []
    for i in np.flatnonzero(~ok):
        v, cell = values[i], cells.iat[i]
        if cell.strip() == "":
            problems.append("the label is empty.")
        elif np.isfinite(v) and v != np.floor(v):
            problems.append(f"label {quote(cell)} is not a whole number.")
        elif np.isfinite(v) and v < 0:
            problems.append(f"label {quote(cell)} is negative.")
        else:
            problems.append(f"label {quote(cell)} is not an integer from 0 to {MAX_RELEVANCE:,}.")
    return np.where(ok, values, 0).astype(np.int64), ~ok, problems


def import_table(
    path: Path,
    out: Path,
    *,
    query: str = "query",
    doc: str = "doc",
    label: str = "label",
    weak: str | None = None,
    weak_score: str | None = None,
    query_id: str | None = None,
    doc_id: str | None = None,
    chunk_rows: int = 200_000,
    log=print,
) -> dict[str, int]:
    """Import ``path`` into the dataset directory ``out`` (see the module docstring); returns the counts."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise UserError(
            "the input file does not exist.", file=str(path), fix="give the path of a CSV or Parquet file."
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            "the output exists and is not an empty directory.",
            file=str(out),
            fix="give --out a new directory (the import never overwrites a dataset).",
        )
    columns = [c for c in (query, doc, label, weak, weak_score, query_id, doc_id) if c is not None]
    columns = list(dict.fromkeys(columns))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    started = time.monotonic()
    try:
        counts = _write(
            path,
            tmp,
            columns,
            query,
            doc,
            label,
            weak,
            weak_score,
            query_id,
            doc_id,
            chunk_rows,
            log,
            started,
        )
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = max(time.monotonic() - started, 1e-9)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:,.1f} MiB" for p in sorted(out.iterdir()))
    log(
        f"imported {counts['rows']:,} rows ({counts['weak']:,} weak) in {seconds:.1f} s "
        f"({counts['rows'] / seconds:,.0f} rows/s): {counts['queries']:,} queries, {counts['docs']:,} docs "
        "-> "
        f"{out} ({sizes})"
    )
    if counts["judged"] == 0:
        log(
            "note: every row is weak, so there is nothing to evaluate on: give some rows without a weak "
            "flag or score."
        )
    return counts


def _write(
    path, tmp, columns, query, doc, label, weak, weak_score, query_id, doc_id, chunk_rows, log, started
):
    seen: dict[str, dict[str, bytes]] = {"query": {}, "doc": {}}
    first_row: dict[str, dict[str, int]] = {"query": {}, "doc": {}}
    bad: list[tuple[int, str, str, str]] = []
    total_bad = rows = n_weak = 0
    with (
        open(tmp / "pairs.csv", "w", newline="", encoding="utf-8") as pairs_fh,
        open(tmp / "queries.csv", "w", newline="", encoding="utf-8") as q_fh,
        open(tmp / "docs.csv", "w", newline="", encoding="utf-8") as d_fh,
    ):
        pairs_w, q_w, d_w = (csv.writer(fh, lineterminator="\n") for fh in (pairs_fh, q_fh, d_fh))
        pairs_w.writerow(["query_id", "doc_id", "relevance", "weak", "weight"])
        q_w.writerow(["query_id", "text"])
        d_w.writerow(["doc_id", "text"])
        writers = {"query": q_w, "doc": d_w}

        def report(row: int, column: str, problem: str, fix: str) -> None:
            nonlocal total_bad
            total_bad += 1
            if len(bad) < MAX_REPORTED:
                bad.append((row, column, problem, fix))

        for chunk in _chunks(path, columns, chunk_rows):
            base = rows
            relevance, bad_label, problems = _labels(chunk[label])
            for i, problem in zip(np.flatnonzero(bad_label), problems, strict=True):
                fix = (
                    "use integers >= 0 (0 = not relevant); for a confidence score use --weak-score COL "
                    "(it becomes the row's sample weight)."
                )
                report(base + int(i), label, problem, fix)
            is_weak = np.zeros(len(chunk), dtype=bool)
            weight = np.ones(len(chunk), dtype=np.float64)
            if weak is not None:
                flags = chunk[weak].str.strip().str.lower()
                is_weak = flags.isin(_TRUE).to_numpy()
                for i in np.flatnonzero(~(flags.isin(_TRUE) | flags.isin(_FALSE)).to_numpy()):
                    report(
                        base + int(i),
                        weak,
                        f"weak {quote(chunk[weak].iat[i])} is not 0/1 or true/false.",
                        "use 1 (or true) for a weak label, 0, false or empty otherwise.",
                    )
            if weak_score is not None:
                cells = chunk[weak_score]
                has = (cells.str.strip() != "").to_numpy()
                score = pd.to_numeric(cells.where(has, "1"), errors="coerce").to_numpy(np.float64)
                ok = np.isfinite(score) & (score >= 0) & (score <= MAX_WEIGHT)
                for i in np.flatnonzero(~ok):
                    report(
                        base + int(i),
                        weak_score,
                        f"weak score {quote(cells.iat[i])} is not a number from 0 to {MAX_WEIGHT:.0e}.",
                        "give a finite confidence >= 0, or leave it empty for a judged row.",
                    )
                is_weak |= has
                weight = np.where(has & ok, score, 1.0)
            ids = {}
            for side, text_col, id_col, prefix in (
                ("query", query, query_id, "q"),
                ("doc", doc, doc_id, "d"),
            ):
                texts = chunk[text_col]
                given = chunk[id_col] if id_col is not None else None
                side_ids = []
                for i, text in enumerate(texts):
                    row = base + i
                    if given is not None:
                        the_id = given.iat[i]
                        if the_id.strip() == "":
                            report(row, id_col, f"the {side} id is empty.", "fill it in, or remove the row.")
                    else:
                        if text.strip() == "":
                            report(
                                row, text_col, f"the {side} text is empty.", "fill it in, or remove the row."
                            )
                        the_id = _id(prefix, text)
                    digest = hashlib.sha256(text.encode()).digest()[:8]
                    known = seen[side].get(the_id)
                    if known is None:
                        seen[side][the_id] = digest
                        first_row[side][the_id] = row
                        writers[side].writerow([the_id, text])
                    elif known != digest:
                        report(
                            row,
                            id_col or text_col,
                            f"{side} id {quote(the_id)} has another text than on "
                            f"{_line_hint(first_row[side][the_id])}.",
                            f"give each {side} id one text (or leave out --{side}-id to derive ids from "
                            "the text).",
                        )
                    side_ids.append(the_id)
                ids[side] = side_ids
            for i in range(len(chunk)):
                pairs_w.writerow(
                    [
                        ids["query"][i],
                        ids["doc"][i],
                        int(relevance[i]),
                        int(is_weak[i]),
                        repr(float(weight[i])) if weight[i] != 1 else "1",
                    ]
                )
            rows += len(chunk)
            n_weak += int(is_weak.sum())
            elapsed = max(time.monotonic() - started, 1e-9)
            log(f"  {rows:,} rows read ({rows / elapsed:,.0f} rows/s)")
    if rows == 0:
        raise UserError(
            "the file has no data rows.", file=str(path), fix="give a header line and one row per line."
        )
    if total_bad:
        raise BadRows(bad, total_bad)
    return {
        "rows": rows,
        "weak": n_weak,
        "judged": rows - n_weak,
        "queries": len(seen["query"]),
        "docs": len(seen["doc"]),
    }


def _line_hint(row: int) -> str:
    """A placeholder for data row ``row``'s place, resolved to "line N" (CSV) or "row N" (Parquet) when the
    error is printed (finding lines takes a scan of the file, done only then)."""
    return f"<row {row}>"


_HINT = re.compile(r"<row (\d+)>")


def _places(path: Path, rows: list[int]) -> dict[int, str]:
    """0-based data row -> "line N" (as an editor counts, header = line 1) for CSV, "row N" for Parquet."""
    if path.suffix.lower() != ".csv":
        return {r: f"row {r + 1}" for r in rows}
    wanted, out = set(rows), {}
    with _csv_rows(path) as lines:
        for n, (line, _, _) in enumerate(lines):
            if n - 1 in wanted:
                out[n - 1] = f"line {line}"
                if len(out) == len(wanted):
                    break
    return {r: out.get(r, f"data row {r + 1}") for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m two_tower.import_data", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("file", type=Path, help="CSV or Parquet file")
    parser.add_argument("--out", type=Path, required=True, help="new dataset directory")
    parser.add_argument("--query", default="query", help="query text column (default: query)")
    parser.add_argument("--doc", default="doc", help="document text column (default: doc)")
    parser.add_argument("--label", default="label", help="integer label column (default: label)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--weak", help="0/1 or true/false column: weak rows are trained on, never evaluated")
    group.add_argument("--weak-score", help="float confidence column: weak=1 and weight=score where given")
    parser.add_argument("--query-id", help="query id column (default: derived from the text)")
    parser.add_argument("--doc-id", help="document id column (default: derived from the text)")
    parser.add_argument(
        "--chunk-rows", type=int, default=200_000, help="rows read at a time (default: 200000)"
    )
    args = parser.parse_args(argv)
    try:
        import_table(
            args.file,
            args.out,
            query=args.query,
            doc=args.doc,
            label=args.label,
            weak=args.weak,
            weak_score=args.weak_score,
            query_id=args.query_id,
            doc_id=args.doc_id,
            chunk_rows=max(1, args.chunk_rows),
            log=lambda text: print(text, flush=True),
        )
    except UserError as err:
        print(f"error: {err.message()}", file=sys.stderr)
        return 2
    except BadRows as err:
        hinted = [int(m) for _, _, problem, _ in err.rows for m in _HINT.findall(problem)]
        places = _places(args.file, [r for r, *_ in err.rows] + hinted)
        for row, column, problem, fix in err.rows:
            problem = _HINT.sub(lambda m: places[int(m.group(1))], problem)
            message = UserError(
                problem, file=str(args.file), where=f"{places[row]}, column {column}", fix=fix
            )
            print(f"error: {message.message()}", file=sys.stderr)
        if err.total > len(err.rows):
            print(
                f"error: ... and {err.total - len(err.rows):,} more bad rows ({err.total:,} in all).",
                file=sys.stderr,
            )
        print(
            f"nothing was written to {args.out}: fix the rows above and run the import again.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
