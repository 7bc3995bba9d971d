"""Cloud Run Admin v2's views of a service and a revision, as the agent renders them (`run.py`
serves them; `run_v1.py` derives gcloud's v1 view from the service's)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..cloudrun import RevisionRecord, ServiceRecord
from .compute_views import rfc3339

_STATE = {
    "READY": "CONDITION_SUCCEEDED",
    "FAILED": "CONDITION_FAILED",
    "PENDING": "CONDITION_PENDING",
    "RETIRED": "CONDITION_SUCCEEDED",
}


def service_name(project: str, svc: ServiceRecord) -> str:
    return f"projects/{project}/locations/{svc.location}/services/{svc.name}"


def revision_path(project: str, svc: ServiceRecord, rev: str) -> str:
    return f"{service_name(project, svc)}/revisions/{rev}"


def service_json(project: str, svc: ServiceRecord) -> dict[str, Any]:
    body = copy.deepcopy(svc.body)
    latest, created = svc.latest_ready, svc.latest_created
    ready = not svc.reconciling and not svc.failure and latest is not None
    state = (
        "CONDITION_PENDING"
        if svc.reconciling
        else "CONDITION_SUCCEEDED"
        if ready
        else "CONDITION_FAILED"
    )
    terminal: dict[str, Any] = {
        "type": "Ready",
        "state": state,
        "lastTransitionTime": rfc3339(svc.updated),
    }
    if svc.failure:
        terminal["message"] = svc.failure
    out: dict[str, Any] = {
        **body,
        "name": service_name(project, svc),
        "uid": svc.uid,
        "generation": str(svc.generation),
        "createTime": rfc3339(svc.created),
        "updateTime": rfc3339(svc.updated),
        "creator": svc.creator,
        "lastModifier": svc.last_modifier or svc.creator,
        "ingress": body.get("ingress", "INGRESS_TRAFFIC_ALL"),
        "launchStage": body.get("launchStage", "GA"),
        "traffic": body.get("traffic")
        or [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
        "observedGeneration": str(svc.generation),
        "terminalCondition": terminal,
        "conditions": [
            {"type": "RoutesReady", "state": state, "lastTransitionTime": rfc3339(svc.updated)},
            {
                "type": "ConfigurationsReady",
                "state": state,
                "lastTransitionTime": rfc3339(svc.updated),
            },
        ],
        "trafficStatuses": [
            {"type": kind, "revision": rev, "percent": percent, **({"tag": tag} if tag else {})}
            for rev, percent, kind, tag in svc.traffic()
        ],
        "uri": f"http://127.0.0.1:{svc.port}",
        "urls": [f"http://127.0.0.1:{svc.port}"],
        "reconciling": svc.reconciling,
        "etag": f'"{svc.generation}"',
    }
    if latest is not None:
        out["latestReadyRevision"] = revision_path(project, svc, latest.name)
    if created is not None:
        out["latestCreatedRevision"] = revision_path(project, svc, created.name)
    return out


def revision_json(
    project: str, svc: ServiceRecord, rev: RevisionRecord, logs: Path
) -> dict[str, Any]:
    t = rev.template
    condition: dict[str, Any] = {
        "type": "Ready",
        "state": _STATE[rev.state],
        "lastTransitionTime": rfc3339(rev.created),
    }
    if rev.message:
        condition["message"] = rev.message
    if rev.state == "RETIRED":
        condition["reason"] = "RETIRED"
    out = {
        "name": revision_path(project, svc, rev.name),
        "uid": rev.uid,
        "generation": "1",
        "labels": t.get("labels", {}),
        "annotations": t.get("annotations", {}),
        "createTime": rfc3339(rev.created),
        "updateTime": rfc3339(rev.created),
        "launchStage": "GA",
        "service": service_name(project, svc),
        "scaling": t.get("scaling", {}),
        "containers": t.get("containers", []),
        "serviceAccount": t.get("serviceAccount", ""),
        "timeout": t.get("timeout", "300s"),
        "maxInstanceRequestConcurrency": t.get("maxInstanceRequestConcurrency", 80),
        "observedGeneration": "1",
        "conditions": [condition],
        "logUri": f"file://{logs / f'run-{rev.name}.log'}",
        "reconciling": rev.state == "PENDING",
        "etag": '"1"',
    }
    return out
