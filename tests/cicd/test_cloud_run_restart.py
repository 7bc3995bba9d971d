"""Cloud Run services outlive the agent (decision 1708): after a `kill -9` and `up`, or `down` and
`up`, a service keeps its revisions (names, images, creation times), its traffic and its `uri`,
and its serving revision runs again (a new instance); gcloud shows the same before and after. A
deleted service stays deleted; a damaged service file stops the start with one line naming it,
as a damaged resource file does (decision 1600)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlplane.cli.main import main
from mlplane.errors import ConfigError
from mlplane.providers.gcp.client import GoogleApis
from mlplane.providers.local.agent.cloudrun import RevisionRecord, ServiceRecord
from mlplane.providers.local.agent.cloudrun_files import RunFiles
from mlplane.providers.local.control import find_agent
from mlplane.providers.local.paths import AgentPaths
from tests.cicd.conftest import CicdProject, gcloud_json, started_project
from tests.cicd.test_cloud_run import LOC, get, get_refused, serving_service, wait_op
from tests.harness import ADMIN, Team
from tests.iam.tools import missing
from tests.local.local_helpers import assert_all_gone, wait_until

pytestmark = pytest.mark.timeout(90)


def kill_agent(team: Team) -> None:
    handle = find_agent(team.project_file)
    assert handle is not None
    os.kill(handle.info.pid, signal.SIGKILL)
    assert_all_gone([handle.info.pid])


def revision_pids(cp: CicdProject, revision: str) -> set[int]:
    """The live process of `revision`'s instance: the one listening on the port its log names
    last (an instance logs `listening on 127.0.0.1:PORT`), if any."""
    log = AgentPaths.for_project(cp.team.project_file).logs / f"run-{revision}.log"
    lines = [x for x in log.read_text().splitlines() if x.startswith("listening on 127.0.0.1:")]
    if not lines:
        return set()
    port = int(lines[-1].split()[2].rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                found.add(int(proc.name))
    return found


def views(cp: CicdProject, name: str) -> dict[str, Any]:
    """What the v2 API and gcloud (the v1 view) show of service `name` and its revisions."""
    admin = cp.team.api(ADMIN)
    service = admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/{name}"})
    revisions = admin.call(
        "run.projects.locations.services.revisions.list", {"parent": f"{LOC}/services/{name}"}
    )["revisions"]
    return {"v2": service, "v2revisions": revisions, **gcloud_views(cp, name)}


def gcloud_views(cp: CicdProject, name: str) -> dict[str, Any]:
    run = gcloud_json(cp, timeout=60)
    listed = [s for s in run("run", "services", "list") if s["metadata"]["name"] == name]
    return {
        "describe": run("run", "services", "describe", name),
        "list": listed,
        "revisions": run("run", "revisions", "list", "--service", name),
    }


def two_revisions(cp: CicdProject, name: str) -> tuple[str, str, str]:
    """Service `name` made and patched once: its two revisions and its uri."""
    admin = cp.team.api(ADMIN)
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.create",
            {"parent": LOC, "serviceId": name},
            serving_service(cp, "one"),
        ),
    )
    first = done["response"]["latestReadyRevision"].rsplit("/", 1)[-1]
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.patch",
            {"name": f"{LOC}/services/{name}"},
            serving_service(cp, "two"),
        ),
    )
    assert "error" not in done, done
    second = done["response"]["latestReadyRevision"].rsplit("/", 1)[-1]
    assert first != second and second.startswith(f"{name}-00002-")
    return first, second, str(done["response"]["uri"])


def serving_again(cp: CicdProject, uri: str, revision: str, before: set[int]) -> set[int]:
    """The front end answers at `uri` again, from a new instance of `revision`."""
    wait_until(lambda: get(uri + "/m/healthz")[0] == 200, 30, f"{uri} to answer")
    now = listening(cp, revision)
    assert not (now & before), (now, before)
    return now


def listening(cp: CicdProject, revision: str) -> set[int]:
    """`revision_pids`, once there are some: an instance announces its port just after it
    listens (a probe or a request may be answered in between)."""
    return wait_until(lambda: revision_pids(cp, revision), 10, f"{revision}'s listening line")


@pytest.fixture(scope="module")
def haproxy_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CicdProject]:
    if shutil.which("haproxy") is None:
        missing("haproxy is not installed (apt-get install haproxy)")
    yield from started_project(tmp_path_factory, '\n[local]\ndata_plane = "haproxy"\n')


@pytest.mark.parametrize("plane", ["python", "haproxy"])
def test_a_service_and_its_revisions_survive_a_killed_agent(
    plane: str, request: pytest.FixtureRequest
) -> None:
    """With either data plane: the one the killed agent left keeps the service's port."""
    cp: CicdProject = request.getfixturevalue(
        "no_engine_project" if plane == "python" else "haproxy_project"
    )
    first, second, uri = two_revisions(cp, "keep")
    pids = listening(cp, second)
    assert not revision_pids(cp, first)  # the retired one is scaled to zero
    path = RunFiles(AgentPaths.for_project(cp.team.project_file).cloudrun).path("keep")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = views(cp, "keep")

    kill_agent(cp.team)
    assert_all_gone(pids)  # the next agent kills what the killed one left
    cp.team.up()
    serving_again(cp, uri, second, pids)
    after = views(cp, "keep")
    assert after == before
    assert after["v2"]["latestReadyRevision"].endswith(second)
    assert after["v2"]["trafficStatuses"] == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "revision": second, "percent": 100}
    ]
    assert not revision_pids(cp, first)

    # it keeps rolling: the third revision is numbered after the restored ones
    admin = cp.team.api(ADMIN)
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.patch",
            {"name": f"{LOC}/services/keep"},
            serving_service(cp, "three"),
        ),
    )
    assert "/revisions/keep-00003-" in done["response"]["latestReadyRevision"]


SLOW = (
    "import time, os, http.server as h; time.sleep(2); "
    "h.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), h.BaseHTTPRequestHandler)"
    ".serve_forever()"
)


def test_a_change_the_killed_agent_had_accepted_completes(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    first, _, uri = two_revisions(cp, "midway")
    body = serving_service(cp, "slow")
    body["template"]["containers"][0].update(command=["python", "-c", SLOW], args=[])
    admin = cp.team.api(ADMIN)
    admin.call("run.projects.locations.services.patch", {"name": f"{LOC}/services/midway"}, body)
    kill_agent(cp.team)  # its new revision is not ready yet (it listens after 2 s)
    saved = json.loads(
        RunFiles(AgentPaths.for_project(cp.team.project_file).cloudrun).path("midway").read_text()
    )
    assert saved["reconciling"] and saved["generation"] == 3
    cp.team.up()
    name = {"name": f"{LOC}/services/midway"}

    def done() -> dict[str, Any] | None:
        svc = cp.team.api(ADMIN).call("run.projects.locations.services.get", name)
        return None if svc["reconciling"] else dict(svc)

    svc = wait_until(done, 30, "the interrupted change to complete")
    third = svc["latestReadyRevision"].rsplit("/", 1)[-1]
    assert third.startswith("midway-00003-") and svc["latestCreatedRevision"].endswith(third)
    assert svc["terminalCondition"]["state"] == "CONDITION_SUCCEEDED" and svc["uri"] == uri
    assert get(uri + "/")[0] == 501  # BaseHTTPRequestHandler: the new revision answers
    revisions = cp.team.api(ADMIN).call(
        "run.projects.locations.services.revisions.list", {"parent": name["name"]}
    )["revisions"]
    assert len(revisions) == 3 and revisions[-1]["name"].endswith(first)


def test_down_and_up_keep_the_services_and_a_taken_port_moves_the_front_end(
    no_engine_project: CicdProject,
) -> None:
    cp = no_engine_project
    _, second, uri = two_revisions(cp, "again")
    admin = cp.team.api(ADMIN)
    v2 = admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/again"})
    pids = listening(cp, second)

    cp.team.down()
    cp.team.up()
    pids = serving_again(cp, uri, second, pids)
    after = admin_view(cp.team.api(ADMIN), "again")
    assert after == v2

    # something else took the port while the agent was down: the service listens elsewhere
    cp.team.down()
    port = int(uri.rsplit(":", 1)[1])
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its connections linger
        taken.bind(("127.0.0.1", port))
        taken.listen()
        cp.team.up()
        moved = admin_view(cp.team.api(ADMIN), "again")["uri"]
        assert moved != uri
        serving_again(cp, moved, second, pids)
    log = AgentPaths.for_project(cp.team.project_file).log.read_text()
    assert f"cannot listen on port {port} again" in log and moved in log


def admin_view(admin: GoogleApis, name: str) -> dict[str, Any]:
    return dict(
        admin.call("run.projects.locations.services.get", {"name": f"{LOC}/services/{name}"})
    )


def test_a_deleted_service_stays_deleted(no_engine_project: CicdProject) -> None:
    cp = no_engine_project
    admin = cp.team.api(ADMIN)
    done = wait_op(
        admin,
        admin.call(
            "run.projects.locations.services.create",
            {"parent": LOC, "serviceId": "gone"},
            serving_service(cp, "one"),
        ),
    )
    path = RunFiles(AgentPaths.for_project(cp.team.project_file).cloudrun).path("gone")
    assert path.exists()
    wait_op(
        admin,
        admin.call("run.projects.locations.services.delete", {"name": f"{LOC}/services/gone"}),
    )
    assert not path.exists()
    kill_agent(cp.team)
    cp.team.up()
    with pytest.raises(Exception, match="not found"):
        cp.team.api(ADMIN).call(
            "run.projects.locations.services.get", {"name": f"{LOC}/services/gone"}
        )
    assert get_refused(done["response"]["uri"])


def test_a_damaged_service_file_names_it_and_the_agent_starts_once_it_is_moved(
    no_engine_project: CicdProject, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = no_engine_project
    paths = AgentPaths.for_project(cp.team.project_file)
    hello = RunFiles(paths.cloudrun).path("hello")  # declared in the project file
    assert hello.exists()
    kill_agent(cp.team)
    hello.write_text('{"format": 1, "name": "hello"')
    with cp.team.environment():
        assert main(["-f", str(cp.team.project_file), "up"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(hello) in err and "move the file away" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert find_agent(cp.team.project_file) is None
    assert hello.read_text() == '{"format": 1, "name": "hello"'  # nothing lost

    hello.rename(paths.root / "hello.json.bad")
    cp.team.up()  # a declared service is created again from its declared image
    svc = cp.team.api(ADMIN).call(
        "run.projects.locations.services.get", {"name": f"{LOC}/services/hello"}
    )
    assert svc["latestCreatedRevision"].rsplit("/", 1)[-1].startswith("hello-00001-")


def test_service_files_round_trip_and_what_cannot_be_read_back(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "cloudrun")
    body = {"template": {"containers": [{"image": "x"}]}}
    svc = ServiceRecord(
        "a/b", "us-central1", body, "me@x", 8123, generation=2, last_modifier="you@x", failure="why"
    )
    rev = RevisionRecord("a-00001-abc", "a/b", 1, {"containers": [{"image": "x"}]}, 5.0)
    rev.state, rev.message = "RETIRED", "no traffic"
    svc.revisions[rev.name] = rev
    files.save(svc)
    (files.root / ".a%2Fb.json.tmp1").write_text("half")  # a write the agent died in
    (back,) = files.load()
    assert not (files.root / ".a%2Fb.json.tmp1").exists()
    keep = ("name", "location", "body", "creator", "port", "generation", "uid", "created")
    assert all(getattr(back, k) == getattr(svc, k) for k in keep)
    assert (back.updated, back.last_modifier, back.failure) == (svc.updated, "you@x", "why")
    (again,) = back.revisions.values()
    assert (again.name, again.state, again.message, again.uid, again.created, again.template) == (
        rev.name, "RETIRED", "no traffic", rev.uid, 5.0, rev.template
    )  # fmt: skip
    assert again.running is None
    path = files.path("a/b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    good = json.loads(path.read_text())
    for broken, why in [
        ("{", "not JSON"),
        (json.dumps({**good, "format": 9}), "format 9"),
        (json.dumps({**good, "name": "c"}), "holds service 'c'"),
        (json.dumps({**good, "port": "80"}), "port '80' is not an integer"),
        (json.dumps({k: v for k, v in good.items() if k != "revisions"}), "no field 'revisions'"),
        (json.dumps({**good, "revisions": [{**good["revisions"][0], "state": "X"}]}), "state"),
    ]:
        path.write_text(broken)
        with pytest.raises(ConfigError, match="cannot be read back") as info:
            files.load()
        assert str(path) in str(info.value) and why in str(info.value), str(info.value)
    files.delete("a/b")
    assert files.load() == []
