"""The operational model holds every action bullet of the requirements document, and the resource
kinds with the document's lifecycle classes."""

from __future__ import annotations

import re

from mlplane.iam.loading import load_shipped_model
from tests.conftest import REPO

DOC = REPO / "docs" / "requirements" / "operational-requirements.txt"
PROCESSES = {
    "Experimentation": "experimentation",
    "Training": "training",
    "Serving": "serving",
    "CI/CD": "cicd",
}
WHO = {"User account:": "user", "Service account:": "service_account", "Both:": "both"}


def requirement_bullets() -> list[tuple[str, str, str]]:
    """(process, who, bullet text) for every action bullet under the Actions section."""
    out: list[tuple[str, str, str]] = []
    process = who = None
    for line in DOC.read_text().splitlines():
        if line.strip() == "Actively Deployed Resources":
            break
        if line.strip() in PROCESSES and not line.startswith(" "):
            process, who = PROCESSES[line.strip()], None
            continue
        m = re.match(r"^( *)\u2022 (.*)$", line)
        if not m or process is None:
            continue
        depth, text = len(m.group(1)), m.group(2).strip()
        if depth == 2:
            who = WHO[text]
        elif depth == 4 and who is not None:
            out.append((process, who, text))
    return out


def resource_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if line.strip() in ("Actively Deployed Resources", "Passively Deployed Resources"):
            current = line.strip().split()[0].lower()
            sections[current] = []
            continue
        m = re.match(r"^  \u2022 (.*)\.$", line)
        if current and m:
            sections[current].append(m.group(1))
    return sections


def test_document_parses_into_all_bullets() -> None:
    bullets = requirement_bullets()
    per_process = {p: sum(1 for b in bullets if b[0] == p) for p in PROCESSES.values()}
    assert per_process == {"experimentation": 10, "training": 10, "serving": 27, "cicd": 4}


def test_every_bullet_is_exactly_one_action_of_its_process_and_principal_kind() -> None:
    model = load_shipped_model()
    remaining = list(model.actions)
    for process, who, text in requirement_bullets():
        matches = [
            a for a in remaining if a.process == process and a.who == who and a.requirement == text
        ]
        assert len(matches) == 1, f"{process}/{who}: '{text}' matches {len(matches)} actions"
        remaining.remove(matches[0])
    assert remaining == [], f"actions with no bullet: {[a.id for a in remaining]}"


def test_each_process_has_its_own_service_account() -> None:
    model = load_shipped_model()
    for p in model.processes:
        ident = model.identity(p.service_account)
        assert ident is not None and ident.kind == "process" and ident.process == p.id
    assert len({p.service_account for p in model.processes}) == len(model.processes)


def test_service_account_actions_are_performed_by_an_identity_of_their_process() -> None:
    model = load_shipped_model()
    for a in model.actions:
        holders = [i for i in model.identities if a in model.identity_actions(i)]
        if a.service_side:
            assert holders and all(i.process == a.process for i in holders), a.id
        else:
            assert not holders, f"user-only action {a.id} is held by {holders}"


def test_resource_kinds_follow_the_documents_lifecycle_classes() -> None:
    kinds = {k.kind: k for k in load_shipped_model().resource_kinds}
    sections = resource_sections()
    assert len(sections["actively"]) == 6 and len(sections["passively"]) == 7
    active = {
        "Instance",
        "InstanceTemplate",
        "InstanceGroupManager",
        "Autoscaler",
        "HealthCheck",
        "BackendService",
    }
    assert {k for k, v in kinds.items() if v.lifecycle == "active"} == active
    assert kinds["UrlMap"].mutability == "dynamic"
    assert kinds["TargetHttpProxy"].mutability == "static"
    assert kinds["ForwardingRule"].mutability == "static"
    assert kinds["EndpointsService"].mutability == "static"
    assert kinds["EndpointsConfig"].mutability == "dynamic"
    assert kinds["CloudRunService"].mutability == "dynamic"
    assert kinds["InstanceTemplate"].mutability == "immutable"


def test_trigger_only_actions_are_the_documents_ci_rules() -> None:
    model = load_shipped_model()
    reserved = {a.id for a in model.actions if a.via_triggers}
    assert "training.write-artifacts" in reserved
    assert {
        a.id for a in model.actions if a.process == "serving" and a.who == "service_account"
    } - reserved == {"serving.read-artifact-registry"}
    for a in model.actions:
        for t in a.via_triggers:
            trigger = model.trigger(t)
            assert trigger is not None
            runner = model.identity(trigger.runs_as)
            assert runner is not None and a in model.identity_actions(runner), (a.id, t)
