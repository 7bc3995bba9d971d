"""A busy load-balancer port is a clear error naming the port and the field, before anything is
created or recorded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlplane.errors import ConfigError
from mlplane.examples.sentiment.train import train
from mlplane.workflows.project_file import write_project_file
from mlplane.workflows.serving import DeployRequest, deploy
from mlplane.workflows.session import Session


def test_busy_lb_port(tmp_path: Path) -> None:
    project = tmp_path / "mlplane.toml"
    write_project_file(project, project_id="acme-ml", members=["user:alice@acme.com"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        project.write_text(project.read_text() + f"\n[local]\nlb_port = {port}\n")
        session = Session.open(project)
        artifact = train(tmp_path / "m", progress=lambda *_: None)
        with pytest.raises(ConfigError) as info:
            deploy(session, DeployRequest("svc", "r1", Path(artifact)), print)
    assert f"port {port}" in str(info.value) and "local.lb_port" in str(info.value)
    assert session.store.load() == {}
    assert not (tmp_path / ".mlplane" / "builds").exists() or not list(
        (tmp_path / ".mlplane" / "builds").glob("*.json")
    )
