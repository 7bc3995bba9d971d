"""Disabling, enabling and destroying versions: 'latest' skips what is not enabled, a destroyed
value is gone from disk, and no shipped principal may do it unless the project grants it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplane.cli.main import main
from mlplane.data.secrets import SecretValue, open_secrets
from mlplane.errors import ConfigError, PermanentError, PermissionDenied
from tests.conftest import PROJECT_TOML
from tests.harness import Team
from tests.teams import team_fixture, wipe

RETIRE = """
[[actions]]
id = "experimentation.retire-secrets"
process = "experimentation"
who = "user"
requirement = "Disable and destroy secret versions."
reason = "A leaked third-party key is disabled, then destroyed."
grants = [{ scope = "project", permissions = [
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.destroy",
] }]
"""

team = team_fixture(PROJECT_TOML + RETIRE)  # for the CLI, which acts by tokens


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GCE_METADATA_HOST", "MLPLANE_SECRETS_BACKEND"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def retiring(project_file: Path) -> Path:
    project_file.write_text(project_file.read_text() + RETIRE)
    return project_file


def seed(project_file: Path) -> None:
    team = open_secrets(project_file, "alice@acme.com", "local")
    for value in (b"v1-value", b"v2-value", b"v3-value"):
        team.set("openai", SecretValue(value))


def test_disable_enable_destroy(retiring: Path) -> None:
    seed(retiring)
    team = open_secrets(retiring, "alice@acme.com", "local")
    assert team.disable("openai", 3).state == "disabled"
    assert team.get("openai").reveal() == b"v2-value"  # latest skips the disabled version
    with pytest.raises(PermanentError, match="version 3 of secret 'openai' is disabled"):
        team.get("openai", 3)
    assert team.enable("openai", 3).state == "enabled"
    assert team.get("openai").reveal() == b"v3-value"
    assert team.destroy("openai", 1).state == "destroyed"
    record = json.loads((retiring.parent / ".mlplane/secrets/openai/1.json").read_text())
    assert record["state"] == "destroyed" and "ciphertext" not in record
    with pytest.raises(PermanentError, match="is destroyed"):
        team.enable("openai", 1)
    states = [(v.version, v.state) for v in team.list()[0].versions]
    assert states == [(1, "destroyed"), (2, "enabled"), (3, "enabled")]
    with pytest.raises(ConfigError, match="version number"):
        team.disable("openai", "latest")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "who", ["alice@acme.com", "experimentation", "training", "serving-runtime"]
)
def test_no_shipped_principal_may_retire_versions(project_file: Path, who: str) -> None:
    seed(project_file)
    secrets = open_secrets(project_file, who, "local")
    for verb in ("disable", "enable", "destroy"):
        with pytest.raises(PermissionDenied, match=f"secretmanager.versions.{verb}"):
            getattr(secrets, verb)("openai", 1)
    assert open_secrets(project_file, "alice@acme.com", "local").get("openai", 1).reveal()


def test_the_cli(team: Team, capsys: pytest.CaptureFixture[str]) -> None:
    """As the signed-in user (granted retire-secrets by the project file), and as a process
    holding training's token (denied)."""
    retiring = wipe(team.project_file)
    seed(retiring)
    args = ["-f", str(retiring), "secrets"]
    with team.environment():
        assert main([*args, "disable", "openai", "--version", "3"]) == 0
    assert "openai: version 3 disabled" in capsys.readouterr().err
    with team.acting("training"):
        assert main([*args, "destroy", "openai", "--version", "3"]) == 3
    assert "secretmanager.versions.destroy" in capsys.readouterr().err
    with team.environment():
        assert main([*args, "destroy", "openai", "--version", "3"]) == 0
    assert "openai: version 3 destroyed" in capsys.readouterr().err
