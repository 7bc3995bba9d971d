"""Notebooks for real: a JupyterLab server on a notebook VM, token-protected, owner-deleted."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from mlplane.errors import PermissionDenied
from mlplane.notebook.launcher import argv
from mlplane.workflows import notebooks as N
from mlplane.workflows.instance_lists import notebooks
from mlplane.workflows.serving import port_free
from tests.workflows.conftest import LocalProject

pytest.importorskip("jupyterlab", reason="the notebook extra (jupyterlab) is not installed")


def status(port: int, token: str | None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_create_list_guard_and_delete(local_project: LocalProject) -> None:
    lp = local_project
    s, as_bob = lp.session, lp.fresh_session("bob@acme.com")
    info = N.create(s, "lab")
    assert info.state == "RUNNING" and info.port is not None
    assert info.url.startswith(f"http://127.0.0.1:{info.port}/lab?token=")
    [listed] = [n for n in N.list_notebooks(s) if n.instance == info.instance]
    assert listed.owner == "alice_acme-com" and listed.idle_seconds is not None
    # `notebook list`'s start-up path (state index + one agent view) sees what the API sees
    [lean] = [n for n in notebooks(str(s.project_file)) or () if n.instance == info.instance]
    assert lean.idle_seconds is not None
    assert lean.to_json() | {"idle_seconds": 0} == listed.to_json() | {"idle_seconds": 0}
    token = N.token_of(s, info.instance)
    assert token and status(info.port, token) == 200
    assert status(info.port, None) == 403
    assert status(info.port, "wrong") == 403
    # the token is in no command line and no instance metadata
    spec = next(r.spec for r in s.store.load().values() if r.key.name == info.instance)
    assert token not in spec.model_dump_json()
    with pytest.raises(PermissionDenied) as denied:
        N.delete(as_bob, "lab")
    assert "only its owner" in str(denied.value)
    N.delete(s, "lab")
    deadline = time.monotonic() + 15
    while not port_free(info.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert port_free(info.port)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", info.port), timeout=1).close()
    assert not [n for n in N.list_notebooks(s) if n.instance == info.instance]
    assert not [n for n in notebooks(str(s.project_file)) or () if n.instance == info.instance]


def test_the_launcher_asks_jupyter_for_the_idle_stop(tmp_path: object) -> None:
    env = {"PORT": "9999", "MLPLANE_NOTEBOOK_IDLE_SEC": "600", "MLPLANE_NOTEBOOK_DIR": "/tmp"}
    command = argv(env)
    assert "--ServerApp.shutdown_no_activity_timeout=600" in command
    assert "--MappingKernelManager.cull_idle_timeout=600" in command
    assert "--ip=127.0.0.1" in command and "--port=9999" in command
    assert not any("token" in a.lower() for a in command)


def test_bad_notebook_names(local_project: LocalProject) -> None:
    from mlplane.errors import ConfigError

    for bad in ("Lab", "lab_1", "-lab", "x" * 31):
        with pytest.raises(ConfigError):
            N.instance_name(bad, local_project.session.principal)
