"""Exit codes shared by the trainer, the job runner and the bootstrap (training/contract/names.json
``exitCodes``, their meanings in ``exitCodeMeanings``), and how to read the trainer's when torchrun stands
between it and the runner."""

from __future__ import annotations

from contract import EXIT_CODES, TrainerState

_RUNNER = EXIT_CODES["runner"]
EXIT_OK = _RUNNER["ok"]
EXIT_FAILED = _RUNNER["crashed"]
"""An unexpected crash."""
EXIT_BAD_INPUT = _RUNNER["badInput"]
"""Bad input or usage: one message, no traceback, nothing claiming success."""
EXIT_BUSY = _RUNNER["busy"]
"""Another runner holds the config: its work directory here, or the lease in the store (lease.py); nothing
was changed (EX_CANTCREAT). Also a runner that lost the lease mid-run: its child was stopped and it wrote
nothing more, since the store is the new holder's."""
EXIT_INTERRUPTED = _RUNNER["interrupted"]
"""Interrupted (SIGTERM, Ctrl-C, spot notice, or a signal to the child that the runner did not send) with a
checkpoint saved: rerun to resume (EX_TEMPFAIL)."""
EXIT_STOPPED = _RUNNER["stopped"]
"""Stopped on request (control.json), checkpoint saved: STOPPED, nothing resumes until a start request."""


def trainer_exit(rc: int, status: object) -> tuple[int, str | None]:
    """The exit code the trainer meant, and its message, from its exit code and OUT/status.json.

    torchrun turns every failed worker into exit code 1, so a trainer that exited 75 (interrupted,
    checkpoint saved) or 2 (bad input) under torchrun would read as a crash: a spot interruption
    would end the job FAILED instead of resuming. Rank 0 writes OUT/status.json before it exits:
    state INTERRUPTED means 75; state FAILED with exitCode 2 means bad input, with its message.
    Any other non-zero exit stands as it is. The runner removes the file before each start, so an
    earlier attempt's status never speaks for this one."""
    if rc == EXIT_OK or not isinstance(status, dict):
        return rc, None
    message = status.get("message") if isinstance(status.get("message"), str) else None
    if status.get("state") == TrainerState.INTERRUPTED:
        return EXIT_INTERRUPTED, message
    if status.get("state") == TrainerState.FAILED and status.get("exitCode") == EXIT_BAD_INPUT:
        return EXIT_BAD_INPUT, message
    return rc, None
