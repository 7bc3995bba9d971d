"""A test that needs gcloud skips where it is absent, and fails instead under CI."""

from __future__ import annotations

import pytest

from tests.iam.tools import REQUIRE, missing


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no gcloud"):
        missing("no gcloud")


def test_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match=r"no gcloud .*required here"):
        missing("no gcloud")
