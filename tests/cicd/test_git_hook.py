"""The shipped git hook (examples/git-hooks/post-merge) runs `mlplane ci run build-images
--branch main` after a merge into main, and nothing after a merge into another branch. `mlplane`
is a recorder here: what the command itself does is test_build_images_*.py's subject."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

HOOK = REPO / "examples" / "git-hooks" / "post-merge"


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "a",
            "GIT_AUTHOR_EMAIL": "a@acme.com",
            "GIT_COMMITTER_NAME": "a",
            "GIT_COMMITTER_EMAIL": "a@acme.com",
            **(env or {}),
        },
    )
    return out.stdout + out.stderr


def test_a_merge_into_main_runs_build_images(tmp_path: Path) -> None:
    root, calls = tmp_path / "repo", tmp_path / "calls"
    recorder = tmp_path / "mlplane"
    recorder.write_text(f'#!/bin/sh\necho "$(pwd) $*" >> {calls}\n')
    recorder.chmod(0o755)
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copy(HOOK, root / ".git" / "hooks" / "post-merge")
    (root / "a.txt").write_text("1")
    git(root, "add", "a.txt")
    git(root, "commit", "-qm", "one")
    env = {"MLPLANE": str(recorder)}

    git(root, "switch", "-q", "-c", "feature")
    (root / "b.txt").write_text("2")
    git(root, "add", "b.txt")
    git(root, "commit", "-qm", "two")
    git(root, "switch", "-q", "-c", "other", "main")
    git(root, "merge", "-q", "--no-edit", "feature", env=env)  # not main: nothing runs
    assert not calls.exists()

    git(root, "switch", "-q", "main")
    said = git(root, "merge", "-q", "--no-ff", "--no-edit", "feature", env=env)
    assert calls.read_text() == f"{root} ci run build-images --branch main\n"
    assert "mlplane ci run build-images --branch main" in said
