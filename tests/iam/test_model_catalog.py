"""Every permission is real, and synthesized roles hold exactly what their actions need."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest

from mlplane.iam.catalog import load_catalog
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import synthesize
from mlplane.model.operational import is_state_action


def test_every_model_permission_is_in_the_shipped_catalog(project_file: Path) -> None:
    catalog = load_catalog()
    loaded = load_project(project_file)
    perms = {p for a in loaded.model.actions for p in a.permissions}
    assert perms and not (perms - catalog.permissions)


def test_roles_hold_exactly_the_permissions_their_actions_need(project_file: Path) -> None:
    loaded = load_project(project_file)
    plan = synthesize(loaded)
    for b in plan.bindings:
        needed: set[str] = set()
        for action_id in b.actions:
            action = loaded.model.action(action_id)
            assert action is not None
            for g in action.grants:
                if g.scope_kind == b.scope.kind or (g.scope_kind, b.scope.kind) == (
                    "project",
                    "project",
                ):
                    needed |= set(g.permissions)
        assert set(b.role.permissions) <= needed, b.role.role_id
        assert set(b.role.permissions), b.role.role_id


def test_no_role_grants_a_permission_no_action_needs(project_file: Path) -> None:
    loaded = load_project(project_file)
    # derived actions too: the team state's readers and writers (decision 1500)
    actions = (*loaded.model.actions, *loaded.model.derived_actions())
    needed = {p for a in actions for p in a.permissions}
    for role in synthesize(loaded).roles:
        assert set(role.permissions) <= needed, role.role_id


def test_service_accounts_and_role_ids_follow_gcp_rules(project_file: Path) -> None:
    import re

    plan = synthesize(load_project(project_file))
    for sa in plan.service_accounts:
        assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", sa.account_id)
    for role in plan.roles:
        assert re.fullmatch(r"[a-zA-Z0-9_.]{3,64}", role.role_id)
        assert len(role.title) <= 100 and len(role.description) <= 256
    assert len({r.role_id for r in plan.roles}) == len(plan.roles)


def test_users_hold_no_service_account_only_permission(project_file: Path) -> None:
    loaded = load_project(project_file)
    plan = synthesize(loaded)
    sa_only = set()
    for a in loaded.model.actions:
        if a.who == "service_account":
            sa_only |= a.permissions
    user_side = {p for a in loaded.model.actions if a.user_side for p in a.permissions}
    sa_only -= user_side
    assert "storage.objects.create" in sa_only and "compute.urlMaps.update" in sa_only
    state_bucket = loaded.project.state_bucket
    for b in plan.bindings:
        if not b.holder.startswith("users:"):
            continue
        if all(map(is_state_action, b.actions)):
            # The one exception (decision 1500): users who apply write the team state, and
            # only there, on its own bucket, never the artifact bucket.
            assert (b.scope.kind, b.scope.name) == ("bucket", state_bucket), b.role.role_id
            artifacts = loaded.project.resources.buckets["artifacts"]
            assert state_bucket != loaded.project.resolve(artifacts)
            continue
        assert not (set(b.role.permissions) & sa_only), b.role.role_id


@pytest.mark.parametrize("name", ["roles.json.gz", "permissions.txt.gz"])
def test_shipped_catalog_matches_its_provenance(name: str) -> None:
    import gzip

    data = resources.files("mlplane.iam.catalog_data")
    raw = gzip.decompress(data.joinpath(name).read_bytes())
    source = data.joinpath("SOURCE.md").read_text()
    assert hashlib.sha256(raw).hexdigest() in source
    assert "MIT License" in data.joinpath("LICENSE").read_text()
