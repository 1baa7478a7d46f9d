"""The fault-injection suite (issue 9): kill -9, damaged checkpoints, S3 outages, full and read-only disks,
two runners, path escapes. Each test asserts the promise: results identical to an uninterrupted run, or a
clear failure with nothing lost.

A package on purpose: its conftest.py is then imported as ``faults.conftest``. Without this file pytest
imports it as a second top-level ``conftest`` and drops training/tests/conftest.py from sys.modules, so
the other test modules' ``from conftest import …`` would break.
"""
