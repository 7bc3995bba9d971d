"""A training spec names secrets by reference (`[secrets] ENV = "SECRET[:VERSION]"`): the job
reads the value from its environment, resolved as the identity it runs as, and no record,
instance metadata or state file ever holds the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplane.data.secrets import SecretValue
from mlplane.data.secrets.service import open_secrets
from mlplane.errors import ConfigError, MlplaneError
from mlplane.workflows import training as T
from tests.workflows.conftest import LocalProject

QUIET = lambda *_: None  # noqa: E731
GRAPH_VALUE = "graph-pw-do-not-store-7f3a"
OTHER_VALUE = "sk-other-do-not-store-21c9"
JOB = """
import os, pathlib
out = pathlib.Path(os.environ["MLPLANE_OUTPUT_DIR"])
out.mkdir(parents=True, exist_ok=True)
value = os.environ["GRAPH_PASSWORD"]
(out / "seen.txt").write_text(str(len(value)))
print("graph password of length", len(value), "ends", value[-4:], flush=True)
"""


def graph_secret(lp: LocalProject) -> str:
    project = lp.session.loaded.project
    return project.resolve(project.resources.secrets["graph"])


@pytest.fixture(scope="module")
def secrets_set(local_project: LocalProject) -> LocalProject:
    """The graph credential (training may read it) and another secret (it may not), set by
    alice, who may write secrets."""
    store = open_secrets(local_project.session.project_file)
    store.set(graph_secret(local_project), SecretValue(GRAPH_VALUE))
    store.set("openai", SecretValue(OTHER_VALUE))
    return local_project


def spec(tmp: Path, name: str, secret: str) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "job.py").write_text(JOB)
    (d / "train.toml").write_text(
        f'name = "{name}"\nentrypoint = "job.py"\n[secrets]\nGRAPH_PASSWORD = "{secret}"\n'
    )
    return d / "train.toml"


def files_holding(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle` (the state, records, logs)."""
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle.encode() in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def test_a_local_run_sees_the_value_as_the_user(secrets_set: LocalProject, tmp_path: Path) -> None:
    lp = secrets_set
    path = spec(tmp_path, "local-secret", f"{graph_secret(lp)}:latest")
    code, out = T.run_local(lp.session, T.load_spec(path), path.parent)
    assert code == 0 and (out / "seen.txt").read_text() == str(len(GRAPH_VALUE))


def test_a_remote_run_resolves_the_reference_as_the_vm_and_stores_none_of_it(
    secrets_set: LocalProject, tmp_path: Path
) -> None:
    lp = secrets_set
    s = lp.session
    path = spec(tmp_path, "remote-secret", graph_secret(lp))
    loaded = T.load_spec(path)
    instance = T.training_instance(s, loaded, path.parent, s.principal)
    metadata = {i.key: i.value for i in instance.metadata.items}
    assert graph_secret(lp) in metadata["mlplane-args"]  # the reference travels...
    assert GRAPH_VALUE not in str(instance.model_dump())  # ...never the value
    run = T.run_remote(s, loaded, path.parent, QUIET)
    assert T.wait(s, run, 60) == 0
    log = T.log_path(s, run.instance).read_text()
    assert f"graph password of length {len(GRAPH_VALUE)} ends {GRAPH_VALUE[-4:]}" in log
    assert files_holding(lp.root / ".mlplane", GRAPH_VALUE) == []


def test_a_secret_the_vm_may_not_read_fails_the_job_with_googles_denial(
    secrets_set: LocalProject, tmp_path: Path
) -> None:
    lp = secrets_set
    s = lp.session
    path = spec(tmp_path, "denied-secret", "openai")
    run = T.run_remote(s, T.load_spec(path), path.parent, QUIET)
    assert T.wait(s, run, 60) == 3  # PermissionDenied's exit code, from the resolver
    log = T.log_path(s, run.instance).read_text()
    assert "GRAPH_PASSWORD: secret 'openai'" in log and "secretmanager.versions.access" in log
    assert OTHER_VALUE not in log
    assert files_holding(lp.root / ".mlplane", OTHER_VALUE) == []


def test_a_missing_secret_stops_a_local_run_before_the_job(
    secrets_set: LocalProject, tmp_path: Path
) -> None:
    lp = secrets_set
    path = spec(tmp_path, "missing-secret", "no-such-secret")
    with pytest.raises(MlplaneError, match=r"GRAPH_PASSWORD: secret 'no-such-secret': ") as info:
        T.run_local(lp.session, T.load_spec(path), path.parent, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out" / "seen.txt").exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('env = { HF_TOKEN = "hf_abc" }', "looks like a credential"),
        ('secrets = { A = "s:0" }', "not a secret reference"),
        ('env = { A = "1" }\nsecrets = { A = "s" }', "in both env and secrets"),
        ('secrets = { "A-B" = "s" }', "environment variable"),
    ],
)
def test_bad_secret_settings_name_the_file_and_field(
    tmp_path: Path, body: str, needle: str
) -> None:
    path = tmp_path / "train.toml"
    path.write_text(f'name = "x"\nentrypoint = "json.tool"\n{body}\n')
    with pytest.raises(ConfigError, match=needle) as info:
        T.load_spec(path)
    assert str(path) in str(info.value)
