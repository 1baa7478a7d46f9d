"""Runs the real job runner through every ending a config can have and leaves what it wrote in one local
store, for the TypeScript half of the conformance suite (test/conformance/artifacts.test.ts), which reads
it with the CLI's status view, the leaderboard and the report, and checks every file against its schema.

    python tests/conformance/make_artifacts.py STORE_DIR

Scenarios (config name: how it ends): trained (SUCCEEDED, trainer mode), bad-data (FAILED, exit 2),
interrupted (SIGTERM: PENDING, exit 75), stopped (a control.json stop: STOPPED, exit 76), script
(SUCCEEDED, script mode), script-fails (FAILED, exit 1). Prints one JSON line: config -> exit code.
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent)]

from jobkit import job_doc, run_job, start_job, wait_for  # noqa: E402

from two_tower import synth  # noqa: E402

SWEEP = "conformance"
SCRIPT = """
import json, os, sys
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
os.makedirs(out, exist_ok=True)
if "--fail" in sys.argv:
    print("the script gives up", flush=True)
    sys.exit(1)
result = {"ndcg@10": 0.42, "device": os.environ["SPOT_SWEEP_DEVICE"]}
json.dump(result, open(os.path.join(out, "r.json"), "w"))
"""


def write_job(store: Path, config: str, data: str | None, script: dict | None = None, **train) -> str:
    prefix = store / "sweeps" / SWEEP / config
    prefix.mkdir(parents=True, exist_ok=True)
    doc = job_doc(prefix.as_uri() + "/", data, sweep=SWEEP, config=config, script=script)
    doc["train"].update(train)
    (prefix / "job.json").write_text(json.dumps(doc, indent=2))
    return str(prefix / "job.json")


def status(store: Path, config: str) -> dict:
    path = store / "sweeps" / SWEEP / config / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main(store: Path) -> dict[str, int]:
    work = store.parent / "work"
    data = synth.generate(
        store.parent / "data", queries=60, docs=120, dim=8, latent=4, candidates=6, positives=2, seed=3
    )
    bad = store.parent / "bad-data"
    bad.mkdir(exist_ok=True)
    (bad / "pairs.csv").write_text("query_id,doc_id\nq1\n")
    code = store.parent / "code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(SCRIPT)
    codes: dict[str, int] = {}

    codes["trained"] = run_job(write_job(store, "trained", str(data), epochs=1), work / "trained").returncode
    codes["bad-data"] = run_job(write_job(store, "bad-data", str(bad)), work / "bad-data").returncode

    long = {"epochs": 400, "batchSize": 16, "checkpointMinutes": 0.005}
    for config in ("interrupted", "stopped"):
        proc = start_job(write_job(store, config, str(data), **long), work / config, "--sync-seconds", "0.2")
        wait_for(
            lambda c=config: status(store, c).get("progress"), f"{config} training", timeout=120, proc=proc
        )
        if config == "interrupted":
            proc.send_signal(signal.SIGTERM)
        else:
            request = {
                "version": 1,
                "action": "stop",
                "by": "spot-sweep stop",
                "reason": "stopped with spot-sweep stop",
                "at": "2026-12-01T12:00:00Z",
                "id": str(uuid.uuid4()),
            }
            (store / "sweeps" / SWEEP / config / "control.json").write_text(json.dumps(request))
        proc.communicate(timeout=120)
        codes[config] = proc.returncode

    for config, args in (("script", []), ("script-fails", ["--fail"])):
        script = {
            "code": str(code),
            "entrypoint": "train.py",
            "args": args,
            "patches": [],
            "results": "results/*.json",
        }
        codes[config] = run_job(write_job(store, config, None, script), work / config).returncode
    return codes


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]).resolve())))
