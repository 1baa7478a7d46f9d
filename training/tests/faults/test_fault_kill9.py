"""kill -9 at seeded-random points of training: of the whole instance (the runner's process group and the
trainer's), of the runner alone, of the trainer alone. Rerun on a fresh work directory (a replacement
instance) and on the same one (the instance's runner started again) until it succeeds: the results equal
the uninterrupted run's, and status.json and train.log count every attempt and interruption."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from .faultkit import (
    MODULE_TIMEOUT,
    Problems,
    StoreView,
    attempt_headers,
    has_traceback,
    in_parallel,
    kill_point,
    kill_strays,
    local_store,
    metrics,
    outcome,
    rng,
    start,
    states_with_attempts,
    strays,
    until,
)

MAX_RUNS = 6

pytestmark = pytest.mark.timeout(MODULE_TIMEOUT)


@dataclass
class Story:
    """What a scenario did, run by run, for the assertions and for a readable failure."""

    view: StoreView
    runs: list = field(default_factory=list)  # (workdir name, how it ended, rc)
    statuses: list = field(default_factory=list)  # the store's status.json after each killed run
    leftovers: list = field(default_factory=list)  # processes still running after the last run
    outputs: list = field(default_factory=list)  # each run's output

    def kills(self) -> int:
        return sum(1 for _, how, _ in self.runs if not how.startswith("ran to its end"))

    def __str__(self) -> str:
        lines = [f"  {w}: {how} -> exit {rc}" for w, how, rc in self.runs]
        last = self.outputs[-1][-3000:] if self.outputs else ""
        return "runs:\n" + "\n".join(lines) + f"\nlast run's output (tail):\n{last}"


def _record(story: Story, name: str, proc, how: str) -> None:
    proc.wait()
    took = f"{proc.seconds:.1f} s"
    story.runs.append((name, (how or "ran to its end") + f" ({took})", "hung" if proc.hung else proc.rc))
    story.outputs.append(proc.output)
    if how:
        story.statuses.append(story.view.json("status.json") or {})


def machine_deaths(root, data: str) -> Story:
    """Two instance deaths, on workdir A, then on a fresh workdir B (a replacement instance); then runs on
    B (the same instance's runner started again) until one succeeds."""
    job, view = local_store(root, "kill-machine", data)
    story, r = Story(view), rng("kill-machine")
    plan = ["A", "B"]
    try:
        for i in range(MAX_RUNS):
            name = plan[i] if i < len(plan) else "B"
            proc = start(job, root / name)
            how = kill_point(proc, r, "machine death") if i < len(plan) else ""
            if how:
                proc.machine_death()
            _record(story, name, proc, how)
            if proc.rc == 0:  # a kill that came too late, or the rerun that finished the job
                break
    finally:
        story.leftovers = kill_strays(root / "A", root / "B")
    return story


def runner_only(root, data: str) -> Story:
    """kill -9 of the runner's process group while its trainer trains; the trainer, in a session of its
    own, is orphaned. The runner is started again at once on the same workdir."""
    job, view = local_store(root, "kill-runner", data)
    story, r = Story(view), rng("kill-runner")
    work = root / "A"
    try:
        proc = start(job, work)
        how = kill_point(proc, r, "runner killed")
        if how:
            proc.kill_runner_only()
        _record(story, "A", proc, how)
        again = start(job, work)
        _record(story, "A", again, "")
        # The orphan may take a moment to notice its output pipe is gone; then nothing may be left.
        until(lambda: not strays(work), 5)
        story.leftovers = strays(work)
    finally:
        kill_strays(work)
    return story


def trainer_only(root, data: str) -> Story:
    """kill -9 of the trainer alone (the pid in workdir/child.pid): the runner sees it die."""
    job, view = local_store(root, "kill-trainer", data)
    story, r = Story(view), rng("kill-trainer")
    work = root / "A"
    try:
        proc = start(job, work)
        how = kill_point(proc, r, "trainer killed", choices=(1, 2))  # mid-training, not while it loads
        pid = proc.trainer_pid() if how else None
        if pid is not None:
            proc.kill_trainer_only(pid)
        _record(story, "A", proc, how if pid is not None else "")
        if proc.rc != 0:
            again = start(job, work)
            _record(story, "A", again, "")
    finally:
        story.leftovers = kill_strays(work)
    return story


@pytest.fixture(scope="module")
def stories(baseline, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill9").resolve()
    return in_parallel(
        {
            name: (lambda fn=fn, name=name: fn(root / name, baseline.data))
            for name, fn in (
                ("machine", machine_deaths),
                ("runner", runner_only),
                ("trainer", trainer_only),
            )
        }
    )


def recovered(story: Story, baseline, kills: int) -> Problems:
    """What breaks the promise after the last run: SUCCEEDED with the reference's numbers; every run
    counted as an attempt and every kill as an interruption, in status.json, results.json and train.log;
    the status history of each killed attempt kept whole (a prefix of the final one), each entry naming its
    own attempt; no process left running."""
    assert story.runs[-1][2] == 0, f"the run after the last kill did not succeed\n{story}"
    status = story.view.json("status.json")
    results = story.view.json("results.json")
    p = Problems()
    p.check(status["state"] == "SUCCEEDED", f"state {status['state']}")
    p.check(metrics(results) == baseline.oracle, "the results differ from the uninterrupted run's")
    attempts = len(story.runs)
    p.check(
        status["attempts"] == attempts and results["job"]["attempts"] == attempts,
        f"{attempts} runs, but status.json counts {status['attempts']} attempts and results.json "
        f"{results['job']['attempts']}",
    )
    p.check(
        status["interruptions"] == kills and results["job"]["interruptions"] == kills,
        f"{kills} kill(s), but status.json counts {status['interruptions']} interruption(s) and results.json "
        f"{results['job']['interruptions']}",
    )
    history = status["history"]
    for before in (s.get("history", []) for s in story.statuses):
        p.check(history[: len(before)] == before, f"the status history lost entries: {before} -> {history}")
    entries = states_with_attempts(status)
    bootstraps = [a for s, a in entries if s == "BOOTSTRAPPING"]
    p.check(
        bootstraps == list(range(1, attempts + 1)),
        f"BOOTSTRAPPING entries name attempts {bootstraps}: {entries}",
    )
    p.check(entries[-1] == ("SUCCEEDED", attempts), f"the last history entry is {entries[-1]}")
    headers = attempt_headers(story.view.log())
    p.check(headers == list(range(1, attempts + 1)), f"train.log's attempt headers are {headers}")
    p.check(not story.leftovers, f"processes left running after the last run: pids {story.leftovers}")
    return p


def test_resumes_to_identical_results_after_the_instance_is_killed_at_random_points(stories, baseline):
    story = outcome(stories, "machine")
    print(story)
    assert story.kills() >= 1, f"no kill landed during training\n{story}"
    recovered(story, baseline, story.kills()).assert_none(story)


def test_a_killed_runners_orphaned_trainer_neither_outlives_it_nor_spoils_the_rerun(stories, baseline):
    story = outcome(stories, "runner")
    print(story)
    assert story.kills() == 1, f"the kill did not land during training\n{story}"
    recovered(story, baseline, 1).assert_none(story)


def test_fails_clearly_when_the_trainer_alone_is_killed_and_the_rerun_matches(stories, baseline):
    story = outcome(stories, "trainer")
    print(story)
    assert story.kills() == 1, f"the kill did not land during training\n{story}"
    # A trainer killed under a live runner is a crash the runner records (FAILED), not an interruption.
    p = recovered(story, baseline, kills=0)
    if story.runs[0][2] != 0:  # a clear failure with nothing lost: FAILED (exit 1) saying it was killed
        failed = story.statuses[0]
        p.check(story.runs[0][2] == 1, f"the killed trainer's runner exited {story.runs[0][2]}, not 1")
        p.check(failed["state"] == "FAILED", f"state {failed['state']} after the trainer was killed")
        message = failed.get("message", "")
        p.check("signal 9" in message, f"the FAILED message does not say how: {message}")
    p.check(not any(has_traceback(o) for o in story.outputs), "a traceback in a run's output")
    p.assert_none(story)
