"""The trainer's stop requests: SIGTERM and SIGINT only. The spot interruption notice is the job runner's
(test_spot_notice.py): the trainer never polls IMDS itself."""

import os
import re
import signal

from conftest import run_trainer
from jobkit import imds  # noqa: F401 - fixture

from two_tower.interrupt import StopRequest, install_signal_handlers


def test_the_first_reason_is_kept():
    stop = StopRequest()
    assert not stop.requested
    stop.set("received SIGTERM")
    stop.set("received SIGINT")
    assert stop.requested and stop.reason == "received SIGTERM"


def test_sigterm_and_sigint_request_a_stop():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            stop = StopRequest()
            install_signal_handlers(stop)
            os.kill(os.getpid(), sig)
            assert stop.requested and stop.reason == f"received {sig.name}"
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_the_trainer_ignores_a_spot_notice_and_never_asks_imds(tiny_dataset, tmp_path, imds):  # noqa: F811
    imds.notice()  # posted before the trainer starts: a trainer that polled would stop at once

    done = run_trainer(
        "--data",
        str(tiny_dataset),
        "--out",
        str(tmp_path / "out"),
        *("--folds", "2", "--epochs", "1", "--batch-size", "256", "--hidden-dim", "16"),
        SPOT_SWEEP_IMDS_ENDPOINT=imds.url,
        SPOT_SWEEP_SPOT_POLL_SECONDS="0.05",
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "results.json").is_file()
    assert imds.requests == [], "the job runner polls the spot notice, not the trainer"
    assert not re.search(r"^spot:", done.stdout, re.M), "no spot-polling line from the trainer"
