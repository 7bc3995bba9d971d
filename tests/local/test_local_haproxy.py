"""The serving front end's tests again, with `[local] data_plane = "haproxy"` in the project
file: routing, the OpenAPI document, busy ports, health pushed into the load balancer, a
stopped control plane under load, the autoscaler on haproxy's counters; and `down` stops
haproxy by its PID."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplane.providers.errors import InvalidRequest
from mlplane.providers.local.dataplane.files import start_time
from mlplane.providers.local.dataplane.haproxy.process import find_haproxy
from mlplane.providers.registry import ProviderSet
from tests.conftest import PROJECT_TOML
from tests.harness import Team, with_admin
from tests.local.local_helpers import assert_all_gone, process_pids
from tests.local.test_local_frontend import (  # noqa: F401  (the tests, run here again)
    ENDPOINTS,
    deployed,
    test_a_busy_port_is_a_clear_error_naming_the_port,
    test_a_stopped_control_plane_neither_stops_traffic_nor_fails_a_replica,
    test_health_changes_are_pushed_into_the_load_balancer,
    test_requests_reach_the_revision_through_the_load_balancer,
    test_the_autoscaler_scales_out_under_load_and_back_in,
    test_the_merged_openapi_document_is_served_by_the_load_balancer,
    update_url_map,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def local_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if find_haproxy() is None:
        if os.environ.get("MLPLANE_REQUIRE_TOOLS") == "1":
            pytest.fail("haproxy is not installed (MLPLANE_REQUIRE_TOOLS=1: required here)")
        pytest.skip("haproxy is not installed (apt-get install -y haproxy)")
    path = tmp_path_factory.mktemp("project") / "mlplane.toml"
    path.write_text(with_admin(PROJECT_TOML) + '\n[local]\ndata_plane = "haproxy"\n')
    return path


@pytest.fixture(scope="module")
def team(local_project: Path) -> Iterator[Team]:
    """The agent of the module; `down` must leave no process behind, haproxy's included."""
    team = Team(local_project, local_project.parent / "config")
    handle = team.up()
    yield team
    info = local_project.parent / ".mlplane" / "agent" / "haproxy.json"
    masters = [int(json.loads(info.read_text())["pid"])] if info.exists() else []
    try:
        pids = process_pids(team)
    except Exception:
        pids = []
    team.down()
    assert_all_gone([handle.info.pid, *pids, *masters])


@pytest.mark.usefixtures("deployed")
def test_haproxy_serves_the_listeners(local_project: Path) -> None:
    info = local_project.parent / ".mlplane" / "agent" / "haproxy.json"
    master = json.loads(info.read_text())
    assert start_time(int(master["pid"])) == int(master["start"])


@pytest.mark.usefixtures("deployed")
def test_a_url_map_haproxy_cannot_serve_is_refused_naming_the_path(serving: ProviderSet) -> None:
    from mlplane.model.compute import SetRoute, WeightedBackendService, frontend

    default = frontend(endpoints_service=ENDPOINTS).default_backend.link
    weird = SetRoute(
        url_map="mlplane-urlmap", path_matcher="models", prefix="/we(ird)/",
        backends=(WeightedBackendService(backend_service=default, weight=1),),
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match=r"path '/we\(ird\)/' has characters"):
        update_url_map(serving, weird)
