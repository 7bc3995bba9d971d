"""`mlplane up` on provider "gcp": the project is checked against the model through Google's
APIs (a loopback fake of them, tests/iam/gcloud_fake.py: no emulator exists for IAM, Resource
Manager or Service Usage), nothing is created or changed, and every gap is named once with
its fix. The client reaches the fake through gcloud's endpoint override variables and a token
file, as it would reach Google through Application Default Credentials."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlplane.cli.main import main
from mlplane.iam.export.foundation import Foundation, build_foundation
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import Binding, synthesize
from tests.conftest import PROJECT_TOML
from tests.iam.gcloud_fake import Store, client_env, fake_google, gcloud_env
from tests.iam.gcloud_fake_seed import call, seed_foundation
from tests.iam.tools import gcloud

PROJECT = PROJECT_TOML.replace(
    'zone = "us-central1-a"\n', 'zone = "us-central1-a"\nprovider = "gcp"\n'
) + (
    """
[[auxiliary.instances]]
name = "aux-neo4j"
image = "neo4j:5"

[[auxiliary.run_services]]
name = "feature-api"
image = "us-docker.pkg.dev/acme-ml/aux/feature-api:1"

[ci]
repository = "https://github.com/acme/ml"

[[identities]]
id = "aux-runtime"
kind = "runtime"
process = "cicd"
title = "Aux"
actions = []
"""
)
TOKEN = "ya29.alice"
ALICE = "alice@acme.com"


@dataclass
class Fake:
    base: str
    store: Store
    project_file: Path
    foundation: Foundation
    tmp: Path


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT)
    loaded = load_project(path)
    foundation = build_foundation(loaded, synthesize(loaded))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with fake_google() as (base, store):
        store.tokens[TOKEN] = ALICE
        for key, value in client_env(base, str(token_file)).items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("GCE_METADATA_HOST", raising=False)
        yield Fake(base, store, path, foundation, tmp_path)


def up(fake: Fake, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-f", str(fake.project_file), "up", *args])
    out, err = capsys.readouterr()
    return code, out, err


def lines(out: str, status: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(status.upper() + " ")]


def named(out: str, name: str) -> int:
    """How often `name` appears in `out` as a whole name."""
    return len(re.findall(rf"(?<![\w.@-]){re.escape(name)}(?![\w@-]|\.\w)", out))


def everything(f: Foundation) -> list[str]:
    """Every name of the foundation that `mlplane export` creates."""
    lb = f.load_balancer
    return [
        *f.apis,
        *(sa.email for sa in f.iam.service_accounts),
        *(r.role_id for r in f.iam.roles),
        *(r.name if r.kind != "repository" else f"repository {r.name}" for r in f.resources),
        f.firewall.name,
        lb.address,
        lb.default_backend,
        lb.url_map,
        lb.proxy,
        lb.forwarding_rule,
        *(t.name for t in f.triggers),
        *(i.name for i in f.instances),
        *(s.name for s in f.run_services),
    ]


# ------------------------------------------------------------------ an empty project


def test_an_empty_project_names_everything_missing_once(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = up(fake, capsys)
    assert code == 4, err
    assert "agent" not in out.lower()  # no local agent on provider gcp
    for name in everything(fake.foundation):
        assert named(out, name) == 1, (name, out)
    assert lines(out, "ok") == []
    assert "mlplane export --format gcloud | bash" in out and "terraform apply" in out
    perms = [line for line in out.splitlines() if "your permissions on project acme-ml" in line]
    assert len(perms) == 1 and perms[0].startswith("DENIED") and "none of the" in perms[0]
    # resources that do not exist are not tested for permissions (nor named again)
    [untested] = [x for x in out.splitlines() if "your permissions on what is missing" in x]
    assert untested.startswith("UNCHECKED") and "not tested on the 6 missing resources" in untested
    assert all(not r.mutating for r in fake.store.requests), "it changed something"
    assert fake.store.unknown == []
    state = fake.project_file.parent / ".mlplane"
    assert not (state / "agent").exists()  # no local agent was started


def test_json_names_each_missing_thing_with_its_fix(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = up(fake, capsys, "--format", "json")
    assert code == 4
    report = json.loads(out)
    assert report["ok"] is False and report["caller"] == f"user:{ALICE}"
    by_check: dict[str, list[dict[str, object]]] = {}
    for c in report["checks"]:
        by_check.setdefault(str(c["check"]), []).append(c)
    [apis] = by_check["apis"]
    assert apis["status"] == "missing" and apis["missing"] == list(fake.foundation.apis)
    assert str(apis["fix"]).startswith("gcloud services enable ")
    [roles] = by_check["custom-roles"]
    assert roles["missing"] == [r.role_id for r in fake.foundation.iam.roles]
    assert "mlplane export" in str(roles["fix"])
    [project_perms] = [c for c in by_check["permissions"] if "project" in str(c["subject"])]
    needed_by = project_perms["needed_by"]
    assert isinstance(needed_by, dict)
    assert "experimentation.list-instances" in needed_by["compute.instances.list"]


def test_apis_not_enabled_leave_their_checks_unchecked(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.store.enforce_apis = True
    code, out, _ = up(fake, capsys)
    assert code == 4
    for api in fake.foundation.apis:
        assert named(out, api) == 1, api
    unchecked = lines(out, "unchecked")
    assert any(line.startswith("UNCHECKED  custom roles: its API is not enabled") for line in
               unchecked), out  # fmt: skip
    assert any("bucket gs://acme-ml-mlplane-artifacts: its API is not enabled" in line
               for line in unchecked)  # fmt: skip


# ------------------------------------------------------------------ a complete project


def test_a_complete_project_passes_and_nothing_changes(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    before = len(fake.store.requests)
    code, out, err = up(fake, capsys)
    assert code == 0, out + err
    assert lines(out, "missing") == lines(out, "drift") == lines(out, "denied") == []
    assert lines(out, "unchecked") == []
    assert out.splitlines()[-1].startswith("ready: ")
    assert f"as user:{ALICE}" in out.splitlines()[0]
    asked = fake.store.requests[before:]
    assert asked and not any(r.mutating for r in asked)
    assert fake.store.unknown == []
    # one testIamPermissions per scope alice's roles are bound at
    tested = {r.path for r in asked if r.path.endswith(("testIamPermissions", "testPermissions"))}
    assert "/v1/projects/acme-ml:testIamPermissions" in tested
    assert "/storage/v1/b/acme-ml-mlplane-artifacts/iam/testPermissions" in tested
    assert any("/serviceAccounts/mlplane-experimentation@" in p for p in tested)
    code, out, _ = up(fake, capsys, "--format", "json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_a_member_who_may_not_read_the_foundation_gets_unchecked_not_a_failure(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    fake.store.forbidden[r"/v1/projects/[^/]+/roles$"] = "iam.roles.list"
    code, out, _ = up(fake, capsys)
    assert code == 0, out
    [line] = lines(out, "unchecked")
    assert line.startswith("UNCHECKED  custom roles: you may not read it (Permission 'iam.roles")


def test_an_admin_is_checked_for_every_team_members_permissions(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    fake.project_file.write_text(
        PROJECT.replace("[team]\n", '[team]\nadmins = ["user:root@acme.com"]\n')
    )
    fake.store.tokens[TOKEN] = "root@acme.com"
    code, out, _ = up(fake, capsys)
    assert code == 4  # not yet an owner on the project
    [line] = [x for x in out.splitlines() if "your permissions on project acme-ml" in x]
    assert line.startswith("DENIED") and "[team] admin" in line
    call(fake.store, "POST", "/v1/projects/acme-ml:setIamPolicy", {"policy": {
        **call(fake.store, "POST", "/v1/projects/acme-ml:getIamPolicy"),
        "bindings": [{"role": "roles/owner", "members": ["user:root@acme.com"]}],
    }})  # fmt: skip
    code, out, _ = up(fake, capsys)
    assert code == 0, out


def test_a_service_account_is_checked_for_its_identitys_roles(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    fake.store.tokens[TOKEN] = "mlplane-cicd@acme-ml.iam.gserviceaccount.com"
    code, out, _ = up(fake, capsys)
    assert code == 0, out
    [line] = [x for x in out.splitlines() if "your permissions on project acme-ml" in x]
    assert line.startswith("OK") and "(cicd)" in line and "condition" in line


# ------------------------------------------------------------------ drift and denial


def _role_of_an_identity(f: Foundation) -> Binding:
    return next(
        b for b in f.iam.bindings if b.holder == "identity:serving" and b.scope.kind == "project"
    )


def test_a_role_whose_permissions_drifted_is_named_with_the_gcloud_fix(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    role = _role_of_an_identity(fake.foundation).role
    dropped = role.permissions[0]
    key = f"projects/acme-ml/roles/{role.role_id}"
    live = fake.store.resources[key]
    live["includedPermissions"] = [*role.permissions[1:], "compute.instances.setMetadata"]
    code, out, _ = up(fake, capsys)
    assert code == 4
    [line] = lines(out, "drift")
    assert line.startswith(f"DRIFT      custom role {role.role_id}: lacks {dropped}; has "
                           "compute.instances.setMetadata beyond the model")  # fmt: skip
    fix = line.split("; fix: ", 1)[1]
    assert fix == (
        f"gcloud iam roles update {role.role_id} --project acme-ml "
        f"--add-permissions={dropped} --remove-permissions=compute.instances.setMetadata"
    )
    assert len(out.splitlines()) == len(set(out.splitlines()))
    # the fix, run by the real gcloud CLI against the same fake, makes the project pass
    (fake.tmp / "gcloud").mkdir()
    env = {**os.environ, **gcloud_env(fake.base, str(fake.tmp / "token"),
                                      str(fake.tmp / "gcloud"), "acme-ml")}  # fmt: skip
    proc = subprocess.run([gcloud(), *fix.split()[1:], "--format=none"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(fake.store.resources[key]["includedPermissions"]) == sorted(role.permissions)
    code, out, _ = up(fake, capsys)
    assert code == 0, out


def test_a_caller_missing_a_permission_learns_which_and_what_needs_it(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    f = fake.foundation
    # alice loses her serving-users role on the project (bob, in group:ml, keeps it)
    serving = next(b for b in f.iam.bindings if b.holder == "users:serving"
                   and b.scope.kind == "project" and b.condition is None)  # fmt: skip
    policy = fake.store.policies["projects/acme-ml"]
    for b in policy["bindings"]:
        if b["role"] == serving.role.name and not b.get("condition"):
            b["members"] = [m for m in b["members"] if m != f"user:{ALICE}"]
    others = {
        p
        for b in f.iam.bindings
        if b is not serving and b.holder.startswith("users:") and b.scope.kind == "project"
        and b.condition is None
        for p in b.role.permissions
    }  # fmt: skip
    lost = sorted(set(serving.role.permissions) - others)
    assert lost
    code, out, _ = up(fake, capsys, "--format", "json")
    assert code == 4
    [denied] = [c for c in json.loads(out)["checks"] if c["status"] == "denied"]
    assert denied["subject"] == "your permissions on project acme-ml"
    assert denied["missing"] == lost
    loaded = load_project(fake.project_file)
    for permission in lost:
        needing = {
            a for a in serving.actions
            if any(permission in g.permissions for g in loaded.model.action(a).grants)  # type: ignore[union-attr]
        }  # fmt: skip
        assert set(denied["needed_by"][permission]) == needing and needing, permission
    code, out, _ = up(fake, capsys)
    [line] = lines(out, "denied")
    assert f"lacking {lost[0]} (needed by " in line and "mlplane export" in line


def test_a_user_outside_the_model_is_told_to_join_it(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_foundation(fake.store, fake.foundation)
    fake.project_file.write_text(PROJECT.replace(', "group:ml@acme.com"', ""))
    fake.store.tokens[TOKEN] = "mallory@example.org"
    code, out, _ = up(fake, capsys)
    assert code == 4
    [line] = lines(out, "denied")
    assert "user:mallory@example.org holds no role in the model" in line
    assert "[team] principals" in line


def test_a_resource_declared_existing_is_not_for_the_export_to_create(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.project_file.write_text(
        PROJECT.replace("[ci]\n", '[resources]\nexisting = ["bucket:artifacts"]\n\n[ci]\n')
    )
    code, out, _ = up(fake, capsys)
    assert code == 4
    [line] = [
        x for x in out.splitlines() if x.startswith("MISSING    bucket gs://acme-ml-mlplane-a")
    ]
    assert "declared in [resources] existing (`bucket:artifacts`)" in line


def test_permissions_are_asked_at_most_a_hundred_at_a_time() -> None:
    from mlplane.iam.synthesis import Scope
    from mlplane.workflows.preflight_access import Target, _held

    class Recorder:
        def __init__(self) -> None:
            self.asked: list[list[str]] = []

        def call(self, method: str, params: Any, body: Any = None, **kw: Any) -> Any:
            perms = list(body["permissions"] if body else params["permissions"])
            self.asked.append(perms)
            return {"permissions": perms[::2]}

    wanted = tuple((f"compute.instances.p{i:03d}", ()) for i in range(230))
    for scope in (Scope("project", "acme-ml"), Scope("bucket", "b")):
        api = Recorder()
        held = _held(api, "acme-ml", Target(scope, wanted, 0, "users of x"))
        assert [len(a) for a in api.asked] == [100, 100, 30]
        assert held == {p for a in api.asked for p in a[::2]}


# ------------------------------------------------------------------ credentials


def test_no_application_default_credentials_is_one_line_saying_how_to_log_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("google.auth")
    path = tmp_path / "mlplane.toml"
    path.write_text(PROJECT)
    for key in list(os.environ):
        if key.startswith(("CLOUDSDK_", "GOOGLE_", "GCE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # not on GCE: refused at once
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    code = main(["-f", str(path), "up"])
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "gcloud auth application-default login" in err


def test_a_refused_token_is_one_line_saying_how_to_log_in(
    fake: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake.tmp / "token").write_text("ya29.expired")
    code, out, err = up(fake, capsys)
    assert code == 3 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "gcloud auth application-default login" in err
