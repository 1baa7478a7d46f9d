"""The retry policy of a failed job, in one place (job.json ``retries``; SkyPilot keeps its recovery
strategy in one module the same way): given the job, the exit code of its trainer or script and the
retries used so far, whether the job runner restarts the child, and the cause, as a sentence, that the
status history records for the failed attempt.

The semantics follow AWS Batch's retry strategy with ``evaluateOnExit`` matched on the exit code (action
RETRY for the listed codes), with two differences. Batch retries a job whose exit matches none of the
entries; here a non-empty ``onExitCodes`` is the whole list of codes worth a rerun and any other code ends
the job (an empty list retries any failing code). Batch's ``attempts`` counts runs in all (1 to 10); ``max``
counts restarts (0 to 10), so ``max: 0`` is Batch's ``attempts: 1``.
@see https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html

Spot interruptions, stops and the runner's own stops are not failures: they never reach this module and
never use a retry (the existing recovery resumes them on a replacement instance).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract import EXIT_CODES

_RUNNER = EXIT_CODES["runner"]
NEVER_RETRIED: dict[int, str] = {
    _RUNNER["badInput"]: "bad input or usage",
    _RUNNER["busy"]: "another job runner holds the config",
    _RUNNER["interrupted"]: "interrupted, checkpoint saved",
    _RUNNER["stopped"]: "stopped on request",
}
"""Exit codes never retried, whatever ``onExitCodes`` says, with what they mean (names.json): bad input
fails the same way on every rerun, and the others are not failures."""

NO_RETRIES = {"max": 0, "onExitCodes": []}
"""A job without retries (job.json always states ``retries``; this is for status readers of older jobs)."""


@dataclass(frozen=True)
class Decision:
    """Whether to restart the child, and the cause the status history records for the failed attempt."""

    retry: bool
    cause: str


def decide(policy: dict | None, exit_code: int, used: int) -> Decision:
    """The decision for a child that exited ``exit_code`` (non-zero) with ``used`` retries already spent."""
    policy = policy or NO_RETRIES
    most, codes = int(policy.get("max", 0)), list(policy.get("onExitCodes", []))
    ended = f"exit code {exit_code}"
    if exit_code in NEVER_RETRIED:
        meaning = NEVER_RETRIED[exit_code]
        return Decision(False, f"{ended} ({meaning}): never retried, a rerun would end the same way")
    if most == 0:
        return Decision(False, f"{ended}: not retried (retries.max is 0)")
    if codes and exit_code not in codes:
        listed = ", ".join(map(str, codes))
        return Decision(False, f"{ended}: not retried (retries.onExitCodes is [{listed}])")
    if used >= most:
        return Decision(False, f"{ended}: no retries left ({used} of {most} used)")
    return Decision(True, f"{ended}: retry {used + 1} of {most}")


def counts(status_doc: dict, policy: dict | None) -> dict:
    """status.json ``retries`` for this job: the retries used so far (kept in the store, so a replacement
    instance continues the count) and the job's max."""
    stored = status_doc.get("retries")
    used = stored.get("used", 0) if isinstance(stored, dict) else 0
    used = used if isinstance(used, int) and not isinstance(used, bool) and used >= 0 else 0
    return {"used": used, "max": int((policy or NO_RETRIES).get("max", 0))}
