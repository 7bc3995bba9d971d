"""The README's tour runs, top to bottom, in a fresh folder, as a newcomer would type it.

Every ```sh block under "## A short tour" is run in order by one bash, in an empty directory
with its own mlplane and gcloud config directories. A command whose comment says `exit N` must
exit N; every other command must exit 0. The agent the tour starts is stopped at the end, even
when a step fails.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.iam.tools import gcloud

README = Path(__file__).resolve().parents[1] / "README.md"
EXPECTED = re.compile(r"#\s*exit (\d+)\b")
HEREDOC = re.compile(r"<<'?(\w+)'?")

pytestmark = pytest.mark.timeout(600)


def tour_commands(text: str) -> list[tuple[str, int]]:
    """(command, expected exit status) for each command of the tour's sh blocks."""
    section = text.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    commands: list[tuple[str, int]] = []
    for block in blocks:
        lines = iter(block.splitlines())
        for line in lines:
            if not line.strip():
                continue
            command = [line]
            heredoc = HEREDOC.search(line)
            if heredoc:
                for body in lines:
                    command.append(body)
                    if body.strip() == heredoc.group(1):
                        break
            expected = EXPECTED.search(line)
            commands.append(("\n".join(command), int(expected.group(1)) if expected else 0))
    return commands


def script(commands: list[tuple[str, int]]) -> str:
    out = []
    for command, expected in commands:
        first = command.splitlines()[0]
        out.append(command)
        out.append(
            f"rc=$?; if [ $rc -ne {expected} ]; then echo "
            f'{shlex.quote("README tour: " + first)} "exited $rc, expected {expected}" >&2; '
            "exit 97; fi"
        )
    return "\n".join(out) + "\n"


def test_the_tour_is_parsed_whole() -> None:
    commands = tour_commands(README.read_text())
    assert commands[0][0].startswith("mlplane init") and commands[-1][0].startswith("mlplane down")
    assert sum(1 for _, code in commands if code) >= 3  # the refusals are part of the tour
    assert any("<<'SPEC'" in c and c.endswith("SPEC") for c, _ in commands)


def test_the_readme_tour_runs_in_a_fresh_folder(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab", reason="the notebook extra (jupyterlab) is not installed")
    gcloud()  # skips where gcloud is absent; a failure under CI
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    folder = tmp_path / "tour"
    folder.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLPLANE_", "CLOUDSDK_", "GOOGLE_", "GCE_METADATA"))
    }
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "MLPLANE_CONFIG_DIR": str(tmp_path / "mlplane-config"),
            "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        }
    )
    commands = tour_commands(README.read_text())
    try:
        done = subprocess.run(
            ["bash", "-c", script(commands)],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "mlplane", "-f", str(folder / "mlplane.toml"), "down"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert '"predictions"' in done.stdout or "predict" in done.stdout
