"""job.json (training/contract/job.schema.json): read, validated with every problem listed at once, typed."""

from __future__ import annotations

import json

import contract

from .quote import cut, quote
from .runlog import JobError
from .storage import is_s3, split_object_uri
from .user_script import Metric, Patch, ScriptSpec, escapes

_PROPS = contract.schema("job")["properties"]
JOB_VERSION = _PROPS["version"]["const"]


def _problem(problems: list[str], field: str, rule: str, value: object) -> None:
    problems.append(f"`{field}` {rule} (got {cut(json.dumps(value))})")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json.loads keeps the last of two equal keys silently; a job file with one is refused instead."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def parse_job(data: bytes, uri: str) -> dict:
    """Validate job.json (training/contract/job.schema.json); collect every problem and raise once."""
    regenerate = "`npx spot-sweep local …` or `npx cdk deploy`"
    # A file that does not parse was damaged or hand-made: the spec gives a whole one again. A field that is
    # wrong is wrong where it came from too: regenerating alone would write it again.
    fix = f"Fix: regenerate the file from the sweep spec ({regenerate})."
    fix_fields = (
        f"Fix: correct these fields in the sweep spec and regenerate the file ({regenerate}), or in the job "
        "file itself if you wrote it by hand."
    )
    try:
        job = json.loads(data, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise JobError(
            f"Job file {uri} has the key {quote(str(e))} twice in one object; JSON would silently keep the "
            f"last one. {fix}"
        ) from e
    except UnicodeDecodeError as e:
        raise JobError(f"Job file {uri} is not UTF-8 text ({e.reason}). {fix}") from e
    except json.JSONDecodeError as e:
        raise JobError(
            f"Job file {uri} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}. {fix}"
        ) from e
    if not isinstance(job, dict):
        raise JobError(f"Job file {uri} must hold a JSON object, not {type(job).__name__}. {fix}")
    problems: list[str] = []
    if job.get("version") != JOB_VERSION:
        _problem(
            problems,
            "version",
            f"must be {JOB_VERSION}: this runner reads job files of version {JOB_VERSION}",
            job.get("version"),
        )
    for key in ("sweep", "config", "store"):
        if not isinstance(job.get(key), str) or not job.get(key):
            _problem(problems, key, "must be a non-empty string", job.get(key))
    store = job.get("store")
    if isinstance(store, str) and store and not (is_s3(store) or store.startswith("file:///")):
        _problem(problems, "store", "must be s3://bucket/prefix/ or file:///absolute/dir/", store)
    gpus, low, high = job.get("gpus"), _PROPS["gpus"]["minimum"], _PROPS["gpus"]["maximum"]
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not low <= gpus <= high:
        _problem(problems, "gpus", f"must be an integer from {low} to {high}", gpus)
    examples, low = job.get("examples"), _PROPS["examples"]["minimum"]
    if examples is not None and (
        not isinstance(examples, int) or isinstance(examples, bool) or examples < low
    ):
        _problem(problems, "examples", f"must be an integer >= {low} or null (all)", examples)
    script = job.get("script")
    data_uri = job.get("data")
    if script is None:
        if not isinstance(data_uri, str) or not data_uri:
            _problem(
                problems,
                "data",
                "must name the dataset (s3://bucket/prefix/ or an absolute directory)",
                data_uri,
            )
        if not isinstance(job.get("train"), dict):
            _problem(problems, "train", "must be an object with the trainer settings", job.get("train"))
    else:
        if data_uri is not None and (not isinstance(data_uri, str) or not data_uri):
            _problem(problems, "data", "must be a location string or null", data_uri)
        _check_script(script, problems)
    encoder = job.get("encoder")
    if encoder is not None and (not isinstance(encoder, str) or not encoder):
        _problem(
            problems,
            "encoder",
            "must be a sentence-transformers model (hub name, s3:// URI, absolute directory) or null",
            encoder,
        )
    elif encoder is not None and script is not None:
        _problem(
            problems,
            "encoder",
            "must be null in a script job (the encoder feeds the built-in trainer)",
            encoder,
        )
    if not problems:
        # The hand-written checks above give the sentences; the schema (training/contract/job.schema.json)
        # catches the rest: unknown keys at any level, bounds, patterns.
        # The schema's messages echo the value whole: cut, so that a huge one still reads as one line.
        problems = [cut(f"`{p}".replace(": ", "` ", 1), 200) for p in contract.problems("job", job)]
    if problems:
        listed = "; ".join(problems)
        raise JobError(f"Job file {uri} has {len(problems)} problem(s): {listed}. {fix_fields}")
    return job


INSIDE_CODE = "must be a path relative to the code root, without `..` (it may not leave the code directory)"


def _check_script(script: object, problems: list[str]) -> None:
    if not isinstance(script, dict):
        _problem(problems, "script", "must be an object or null", script)
        return
    for key in ("code", "entrypoint", "results"):
        if not isinstance(script.get(key), str) or not script.get(key):
            _problem(problems, f"script.{key}", "must be a non-empty string", script.get(key))
        elif key != "code" and escapes(script[key]):
            _problem(problems, f"script.{key}", INSIDE_CODE, script[key])
    args = script.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        _problem(problems, "script.args", "must be a list of strings", args)
    patches = script.get("patches", [])
    if not isinstance(patches, list):
        _problem(problems, "script.patches", "must be a list", patches)
        return
    for i, p in enumerate(patches):
        if not isinstance(p, dict):
            _problem(problems, f"script.patches[{i}]", "must be an object with file, find, replace", p)
            continue
        for key in ("file", "find"):
            if not isinstance(p.get(key), str) or not p.get(key):
                _problem(problems, f"script.patches[{i}].{key}", "must be a non-empty string", p.get(key))
        if isinstance(p.get("file"), str) and p["file"] and escapes(p["file"]):
            _problem(problems, f"script.patches[{i}].file", INSIDE_CODE, p["file"])
        if not isinstance(p.get("replace"), str):
            _problem(problems, f"script.patches[{i}].replace", "must be a string", p.get("replace"))
    requirements = script.get("requirements")
    if isinstance(requirements, str) and requirements and escapes(requirements):
        _problem(problems, "script.requirements", INSIDE_CODE, requirements)
    metric = script.get("metric")
    if isinstance(metric, dict) and isinstance(metric.get("file"), str) and escapes(metric["file"]):
        _problem(problems, "script.metric.file", INSIDE_CODE, metric["file"])


def script_spec(job: dict) -> ScriptSpec:
    s = job["script"]
    m = s["metric"]
    metric = Metric(m["pointer"], m["name"], m["higherIsBetter"], m["folds"], m["file"]) if m else None
    return ScriptSpec(
        code=s["code"],
        entrypoint=s["entrypoint"],
        args=tuple(s.get("args", [])),
        patches=tuple(Patch(p["file"], p["find"], p["replace"]) for p in s.get("patches", [])),
        results=s["results"],
        metric=metric,
        requirements=s["requirements"],
        launcher=s["launcher"],
    )


def fallback_store(job_uri: str) -> str | None:
    """Where a job file that cannot be read lives: its folder, when it is named job.json (the
    CDK app and local mode write it there), so its FAILED status lands where users look."""
    directory, name = split_object_uri(job_uri)
    return directory if name == contract.CONFIG_FILES["job"] else None
