"""The test kit itself: the S3 tests may skip on a laptop without moto_server, never in CI."""

from __future__ import annotations

import jobkit
import pytest


@pytest.fixture
def no_moto_server(monkeypatch):
    monkeypatch.setattr(jobkit, "_moto", {})
    monkeypatch.setenv("PATH", "/nonexistent")


def test_fails_without_moto_server_when_ci_is_set(no_moto_server, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="moto_server is not on PATH.*CI is set"):
        jobkit.moto_endpoint()


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_skips_without_moto_server_on_a_local_run(no_moto_server, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="moto_server is not on PATH"):
        jobkit.moto_endpoint()
