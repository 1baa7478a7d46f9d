"""Two runners on one config at once: on one work directory (one machine), and on two work directories
with one store (a replacement instance while the old one still runs, a manual run beside the fleet). The
promise: exactly one trains; the other exits 73 at once, naming the holder, and changes nothing; status.json
and train.log count one attempt; the results equal the uninterrupted run's."""

from __future__ import annotations

import pytest

from .faultkit import (
    MODULE_TIMEOUT,
    Problems,
    attempt_headers,
    has_traceback,
    in_parallel,
    kill_strays,
    local_store,
    metrics,
    outcome,
    s3_store,
    start,
    states_with_attempts,
    until,
)

BUSY = 73

pytestmark = pytest.mark.timeout(MODULE_TIMEOUT)


def pair(job: str, first, second, staggered: bool, view) -> dict:
    """Start two runners (the second once the first trains, when ``staggered``) and wait for both."""
    a = start(job, first)
    try:
        if staggered:
            until(
                lambda: (view.json("status.json") or {}).get("state") == "TRAINING" or not a.alive(), 60, 0.1
            )
        b = start(job, second)
        for proc in (a, b):
            proc.wait()
    finally:
        kill_strays(first, second)
    return {"runs": (a, b), "view": view, "workdirs": (first, second), "staggered": staggered}


@pytest.fixture(scope="module")
def pairs(bucket, s3_data, baseline, tmp_path_factory):
    root = tmp_path_factory.mktemp("two-runners").resolve()

    def one_workdir():
        job, view = local_store(root / "one-workdir", "two-one-workdir", baseline.data)
        work = root / "one-workdir" / "work"
        return pair(job, work, work, False, view)

    def one_store(staggered: bool):
        name = "staggered" if staggered else "at-once"
        job, view = s3_store(bucket, f"two-stores-{name}", s3_data)
        return pair(job, root / name / "work-a", root / name / "work-b", staggered, view)

    return in_parallel(
        {
            "one-workdir": one_workdir,
            "one-store-staggered": lambda: one_store(True),
            "one-store-at-once": lambda: one_store(False),
        }
    )


@pytest.mark.parametrize("case", ["one-workdir", "one-store-staggered", "one-store-at-once"])
def test_exactly_one_of_two_runners_trains_and_the_other_exits_busy_naming_it(pairs, baseline, case):
    c = outcome(pairs, case)
    (a, b), view = c["runs"], c["view"]
    print(f"{case}: first {a}, second {b}")
    assert not a.hung and not b.hung, f"a runner hung: {a}, {b}"
    assert sorted((a.rc, b.rc)) == [0, BUSY], f"exits {a.rc} and {b.rc}:\n{a.tail()}\n---\n{b.tail()}"
    winner, loser = (a, b) if a.rc == 0 else (b, a)
    p = Problems()
    if c["staggered"]:
        p.check(loser is b, "the runner that came second took the config from the one training")
    p.check(loser.ended < winner.ended, f"the busy runner did not exit at once: {loser} vs {winner}")
    holder = [str(winner.proc.pid), str(winner.workdir)]
    p.check(
        any(h in loser.output for h in holder), f"the busy runner does not name the holder:\n{loser.tail()}"
    )
    p.check(not has_traceback(loser.output), f"traceback:\n{loser.tail()}")
    status = view.json("status.json")
    p.check(status["state"] == "SUCCEEDED", f"state {status['state']}")
    p.check(status["attempts"] == 1, f"status.json counts {status['attempts']} attempts")
    bootstraps = [s for s, _ in states_with_attempts(status) if s == "BOOTSTRAPPING"]
    p.check(len(bootstraps) == 1, f"{len(bootstraps)} BOOTSTRAPPING entries: {states_with_attempts(status)}")
    p.check(attempt_headers(view.log()) == [1], f"train.log headers {attempt_headers(view.log())}")
    results = view.json("results.json")
    p.check(results["job"]["attempts"] == 1, f"results.json counts {results['job']['attempts']} attempts")
    p.check(metrics(results) == baseline.oracle, "results differ from the uninterrupted run's")
    p.assert_none()
