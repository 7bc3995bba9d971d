"""The user guides match the code: every action of a process is in its guide, and the README's
two set-up commands are the ones CI runs."""

from __future__ import annotations

import pytest

from mlplane.iam.loading import load_shipped_model
from tests.conftest import REPO


@pytest.mark.parametrize("process", ["experimentation", "training", "serving", "cicd"])
def test_process_guide_lists_every_action(process: str) -> None:
    text = (REPO / "docs" / f"{process}.md").read_text()
    for action in load_shipped_model().actions:
        if action.process == process:
            assert f"`{action.id}`" in text, f"docs/{process}.md misses {action.id}"


def test_iam_guide_and_readme_exist_and_ci_runs_the_readme_test_command() -> None:
    assert (REPO / "docs" / "iam.md").is_file()
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 -m pip install -e '.[dev]' && python3 -m pytest -q" in readme
    assert "python -m pip install -q -e '.[dev]'" in ci and "python -m pytest -q" in ci


def test_test_file_names_are_unique() -> None:
    """pytest imports test files by basename (rootdir conftest, no packages): a duplicate breaks
    collection of the whole suite."""
    names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"rename: {dupes}"
