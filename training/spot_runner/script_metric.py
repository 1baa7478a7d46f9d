"""Script mode: the score a script declares (job.json ``script.metric``), read from its results file once it
succeeded, for results.json ``metric`` (results.schema.json ``$defs/scriptMetric``).

The metric is a JSON pointer (RFC 6901) into the file, with an optional pointer to the per-fold values. A
declared metric the file does not hold (no such file, not JSON, nothing at the pointer, not a number) fails
the job with one sentence naming the file, the pointer and the fix: a script never SUCCEEDS without the score
it promised, which would rank it nowhere without a word.
@see https://www.rfc-editor.org/rfc/rfc6901
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from .exits import EXIT_FAILED
from .quote import quote
from .user_script import Metric, ScriptError


def tokens(pointer: str) -> list[str]:
    """The pointer's reference tokens, unescaped (``~1`` is ``/``, ``~0`` is ``~``, in that order)."""
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


class Missing(Exception):
    """Nothing at the pointer: ``where`` says how far it got."""


def resolve(doc: object, pointer: str) -> object:
    """The value at ``pointer`` in ``doc`` (RFC 6901 section 4: an object member by name, an array element
    by its decimal index); Missing says where it stopped."""
    value = doc
    walked = ""
    for token in tokens(pointer):
        if isinstance(value, dict):
            if token not in value:
                keys = ", ".join(quote(k) for k in list(value)[:8]) or "none"
                raise Missing(f"{quote(walked or '/')} has no key {quote(token)} (its keys: {keys})")
            value = value[token]
        elif isinstance(value, list):
            if not (token.isdigit() and (token == "0" or not token.startswith("0"))) or int(token) >= len(
                value
            ):
                raise Missing(
                    f"{quote(walked or '/')} is a list of {len(value)}; {quote(token)} is not an index"
                )
            value = value[int(token)]
        else:
            raise Missing(f"{quote(walked or '/')} is {type(value).__name__}, not an object or a list")
        walked += "/" + token.replace("~", "~0").replace("/", "~1")
    return value


def _number(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def read_metric(metric: Metric, code_dir: Path, collected: list[Path]) -> dict:
    """results.json ``metric``: {name, higherIsBetter, mean, std, folds, file}. ``collected``: the files the
    results glob matched (the default file is the single JSON one among them). Raises ScriptError
    (EXIT_FAILED) naming the file, the pointer and the fix."""
    if metric.file is not None:
        path = code_dir / metric.file
        rel = metric.file
    else:
        jsons = [p for p in collected if p.suffix.lower() == ".json"]
        if len(jsons) != 1:
            found = ", ".join(quote(p.relative_to(code_dir).as_posix()) for p in jsons[:5]) or "none"
            raise ScriptError(
                f"script.metric: the results glob collected {len(jsons)} JSON file(s) ({found}), so which "
                f"one holds the metric {quote(metric.pointer)} is not known. Fix: set script.metric.file to "
                "the results file that holds it (relative to the code root).",
                EXIT_FAILED,
            )
        path = jsons[0]
        rel = path.relative_to(code_dir).as_posix()
    fix = (
        f"Fix: make the script write the number at {quote(metric.pointer)} in {rel}, or correct "
        "script.metric.pointer (a JSON pointer: /key/subkey, /list/0)."
    )
    if not path.is_file() or not path.resolve().is_relative_to(code_dir.resolve()):
        raise ScriptError(
            f"script.metric: the results file {quote(rel)} does not exist in the code directory after the "
            f"script exited with success. Fix: make the script write it, or correct script.metric.file.",
            EXIT_FAILED,
        )

    def reject(constant: str) -> object:
        raise ValueError(f"{constant} is not a number JSON allows")

    try:
        doc = json.loads(path.read_bytes(), parse_constant=reject)
    except (ValueError, OSError) as e:
        raise ScriptError(
            f"script.metric: the results file {quote(rel)} is not valid JSON ({e}), so the metric "
            f"{quote(metric.pointer)} cannot be read from it. {fix}",
            EXIT_FAILED,
        ) from None
    try:
        raw = resolve(doc, metric.pointer)
    except Missing as e:
        raise ScriptError(
            f"script.metric: {rel} holds nothing at the pointer {quote(metric.pointer)}: {e}. {fix}",
            EXIT_FAILED,
        ) from None
    mean = _number(raw)
    if mean is None:
        raise ScriptError(
            f"script.metric: {rel} holds {quote(json.dumps(raw)[:80])} at the pointer "
            f"{quote(metric.pointer)}, not a finite number. {fix}",
            EXIT_FAILED,
        )
    folds = None
    if metric.folds is not None:
        fold_fix = (
            f"Fix: make the script write a list of numbers at {quote(metric.folds)} in {rel}, or correct "
            "script.metric.folds."
        )
        try:
            values = resolve(doc, metric.folds)
        except Missing as e:
            raise ScriptError(
                f"script.metric.folds: {rel} holds nothing at the pointer {quote(metric.folds)}: {e}. "
                + fold_fix,
                EXIT_FAILED,
            ) from None
        numbers = [_number(v) for v in values] if isinstance(values, list) else [None]
        if not numbers or any(n is None for n in numbers):
            raise ScriptError(
                f"script.metric.folds: {rel} holds {quote(json.dumps(values)[:80])} at "
                f"{quote(metric.folds)}, not a non-empty list of finite numbers. {fold_fix}",
                EXIT_FAILED,
            )
        folds = [n for n in numbers if n is not None]
    std = statistics.stdev(folds) if folds is not None and len(folds) > 1 else None  # ddof 1, as the trainer
    return {
        "name": metric.name,
        "higherIsBetter": metric.higher_is_better,
        "mean": mean,
        "std": std,
        "folds": folds,
        "file": rel,
    }
