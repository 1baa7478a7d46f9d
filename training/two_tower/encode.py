"""``python -m two_tower.encode``: the exported final model (OUT/model/) applied to a dataset.

    python -m two_tower.encode --model OUT/model --data DIR --out DIR [--top-k 10] [--batch-size N]

Reads model.json and model.safetensors (two_tower/export.py), verifying the weights' SHA-256 before trusting
them; reads DIR in any layout the trainer reads (embeddings, or texts featurized as the trainer does:
two_tower/data.py); writes to --out query_vectors.npy and doc_vectors.npy (float32, one L2-normalised row per
id) with query_ids.txt and doc_ids.txt (one id per line, in row order), and topk.csv (query_id, rank, doc_id,
score: each query's --top-k documents of the whole corpus by cosine score, ties by document row).

Scoring is chunked (TOPK_QUERIES queries against ENCODE_ROWS documents at a time, a running top-k kept per
query), so a corpus of millions of documents needs memory for its vectors and one chunk, not a full score
matrix. A model trained on encode_texts' vectors records their encoder (model.json ``encoder``); data whose
encoder.json names another encoder is refused, since its vectors live in another space (data without
encoder.json is used with a warning: the vectors may have been made another way).
Exit codes: 0 done; 2 bad input (one message naming the file and the fix, no traceback).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from contract import EXIT_CODES

from .checkpoint import sha256_of
from .data import load_dataset
from .encode_texts import ENCODER_FILE, UNRESOLVED, read_encoder_record
from .errors import UserError, quote
from .evaluate import ENCODE_ROWS, TOPK_QUERIES
from .export import FORMAT_VERSION, MANIFEST, WEIGHTS
from .model import TwoTower

EXIT_BAD_INPUT = EXIT_CODES["trainer"]["badInput"]
FIX_MODEL = "pass --model the model/ directory the trainer wrote (OUT/model/), or train again to export it."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m two_tower.encode",
        description="Encode a dataset's queries and documents with an exported model and rank the corpus.",
    )
    p.add_argument("--model", type=Path, required=True, help="the trainer's OUT/model/ directory")
    p.add_argument(
        "--data", type=Path, required=True, help="dataset directory, in any layout the trainer reads"
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the vectors, ids and topk.csv")
    p.add_argument("--top-k", type=int, default=10, help="documents per query in topk.csv (default 10)")
    p.add_argument(
        "--batch-size", type=int, default=ENCODE_ROWS, help=f"rows encoded at once (default {ENCODE_ROWS})"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if any")
    return p


def load_model(model_dir: Path) -> tuple[TwoTower, dict]:
    """The model and its model.json, after checking the weights' SHA-256 against model.json."""
    manifest_path, weights_path = model_dir / MANIFEST, model_dir / WEIGHTS
    if not manifest_path.is_file():
        raise UserError("model.json is missing.", file=str(manifest_path), fix=FIX_MODEL)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        version, shape, recorded = manifest["formatVersion"], manifest["model"], manifest["weights"]["sha256"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"model.json is unreadable or incomplete ({type(err).__name__}: {err}).",
            file=str(manifest_path),
            fix=FIX_MODEL,
        ) from None
    if version != FORMAT_VERSION:
        raise UserError(
            f"formatVersion is {quote(version)}; this encode reads {FORMAT_VERSION}.",
            file=str(manifest_path),
            where="field formatVersion",
            fix="encode with the spot-sweep version that trained the model.",
        )
    if not weights_path.is_file():
        raise UserError("model.safetensors is missing.", file=str(weights_path), fix=FIX_MODEL)
    actual = sha256_of(weights_path)
    if actual != recorded:
        raise UserError(
            f"the weights do not match model.json (sha256 {actual[:12]}…, recorded {recorded[:12]}…): "
            "the file is damaged or was replaced.",
            file=str(weights_path),
            fix="copy model/ again from the store (sweeps/<sweep>/<config>/model/) or the trainer's OUT/.",
        )
    try:
        weights = load_file(weights_path)
        model = TwoTower(shape["inputDim"], shape["hiddenDim"], text=shape["input"] == "text")
        model.load_state_dict(weights, strict=True)
    except (SafetensorError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"the weights do not load as the model model.json describes ({str(err).splitlines()[0]}).",
            file=str(weights_path),
            fix=FIX_MODEL,
        ) from None
    return model.eval(), manifest


@torch.no_grad()
def encode_rows(encode, features: np.ndarray, batch: int, device: torch.device) -> np.ndarray:
    """float32 vectors of every row of ``features``, ``batch`` rows at a time."""
    out: np.ndarray | None = None
    for start in range(0, len(features), batch):
        v = encode(torch.from_numpy(features[start : start + batch]).to(device)).float().cpu().numpy()
        if out is None:
            out = np.empty((len(features), v.shape[1]), dtype=np.float32)
        out[start : start + len(v)] = v
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def top_k(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc rows, scores), each [queries, min(k, docs)]: the best documents by dot product, best first, ties
    by document row. Chunked: TOPK_QUERIES queries x ENCODE_ROWS documents scored at a time."""
    k = min(k, len(docs))
    best_rows = np.empty((len(queries), k), dtype=np.int64)
    best_scores = np.empty((len(queries), k), dtype=np.float32)
    for qs in range(0, len(queries), TOPK_QUERIES):
        q = queries[qs : qs + TOPK_QUERIES]
        rows = np.empty((len(q), 0), dtype=np.int64)
        scores = np.empty((len(q), 0), dtype=np.float32)
        for ds in range(0, len(docs), ENCODE_ROWS):
            chunk = q @ docs[ds : ds + ENCODE_ROWS].T
            rows = np.concatenate([rows, np.broadcast_to(np.arange(ds, ds + chunk.shape[1]), chunk.shape)], 1)
            scores = np.concatenate([scores, chunk], 1)
            order = np.lexsort((rows, -scores), axis=-1)[:, :k]  # score descending, then row ascending
            rows = np.take_along_axis(rows, order, 1)
            scores = np.take_along_axis(scores, order, 1)
        best_rows[qs : qs + len(q)], best_scores[qs : qs + len(q)] = rows, scores
    return best_rows, best_scores


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_encoder(manifest: dict, model_dir: Path, data_dir: Path) -> None:
    """Refuse vectors another encoder than the model's made; warn when the data cannot say which made them."""
    want = manifest.get("encoder")
    if not want:
        return
    got = read_encoder_record(data_dir)
    if got is None:
        print(
            f"warning: {data_dir / ENCODER_FILE} is missing, so the vectors' encoder cannot be checked; "
            f"the model was trained on vectors from {want['name']} ({model_dir / MANIFEST}, field encoder). "
            "If they were made another way, make sure it was the same encoder.",
            file=sys.stderr,
        )
        return
    if got["identity"] == want["identity"]:
        return
    hub_name = want["identity"][: -len(UNRESOLVED)]  # "hub:<name>@" when the model's was keyed by name only
    if want["identity"].endswith(f"@{UNRESOLVED}") and got["identity"].startswith(hub_name):
        # The commit the model's hub encoder had is unknown, so the data's cannot be shown to differ.
        print(
            f"warning: the model's encoder {want['name']} was not pinned to a revision "
            f"({model_dir / MANIFEST}), so {data_dir / ENCODER_FILE}'s {got['identity']} cannot be checked.",
            file=sys.stderr,
        )
        return
    raise UserError(
        f"the vectors were made by the encoder {got['name']} ({got['identity']}), but the model was trained "
        f"on vectors from {want['name']} ({want['identity']}, {model_dir / MANIFEST} field encoder).",
        file=str(data_dir / ENCODER_FILE),
        fix=f"encode the texts with the model's encoder: python -m two_tower.encode_texts --data DIR "
        f"--encoder {want['name']} --out DIR2, and pass --data DIR2.",
    )


def run(args: argparse.Namespace) -> int:
    for flag, value in (("--top-k", args.top_k), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UserError(f"{flag} is {value}.", where=f"flag {flag}", fix=f"pass {flag} 1 or more.")
    model, manifest = load_model(args.model)
    data = load_dataset(args.data)
    shape = manifest["model"]
    if data.kind != shape["input"] or (data.kind == "embeddings" and data.input_dim != shape["inputDim"]):
        got = f"{data.kind} of width {data.input_dim}" if data.kind == "embeddings" else "texts"
        want = f"embeddings of width {shape['inputDim']}" if shape["input"] == "embeddings" else "texts"
        raise UserError(
            f"the data holds {got}, but the model was trained on {want}.",
            file=str(args.data),
            fix=f"pass --data a dataset of {want}, as the model's training data was."
            + (
                " A config with an `encoder` trained on its texts' embeddings: encode the new texts"
                " with the same model first (python -m two_tower.encode_texts --data DIR"
                " --encoder MODEL --out DIR2) and pass --data DIR2."
                if data.kind == "text" and shape["input"] == "embeddings"
                else ""
            ),
        )
    if data.kind == "embeddings":
        check_encoder(manifest, args.model, args.data)
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    model.to(device)
    qv = encode_rows(model.encode_queries, data.query_features, args.batch_size, device)
    dv = encode_rows(model.encode_docs, data.doc_features, args.batch_size, device)
    rows, scores = top_k(qv, dv, args.top_k)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _save_npy(out / "query_vectors.npy", qv)
    _save_npy(out / "doc_vectors.npy", dv)
    _write_text(out / "query_ids.txt", "".join(f"{i}\n" for i in data.query_ids))
    _write_text(out / "doc_ids.txt", "".join(f"{i}\n" for i in data.doc_ids))
    tmp = out / "topk.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query_id", "rank", "doc_id", "score"])
        doc_ids = np.asarray(data.doc_ids)
        for qi, query_id in enumerate(data.query_ids):
            for rank in range(rows.shape[1]):
                writer.writerow([query_id, rank + 1, doc_ids[rows[qi, rank]], f"{scores[qi, rank]:.9g}"])
    os.replace(tmp, out / "topk.csv")
    print(
        f"encoded {len(qv)} queries and {len(dv)} documents; "
        f"top {rows.shape[1]} per query in {out / 'topk.csv'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"error: {err.message()}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
