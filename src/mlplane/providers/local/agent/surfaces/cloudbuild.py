"""Cloud Build v1 as the agent serves it: the model's triggers (list, get, run), builds (get,
list, cancel) and their operations, global and under `locations/global`.

Running a trigger checks the invoker as Cloud Build would (`cloudbuild.builds.create`) and,
since Cloud Build has no per-trigger IAM, also that the invoker holds its process's "invoke
triggers" action (docs/decisions/0006). The build then runs as the trigger's service account.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

from mlplane.apis.discovery import load
from mlplane.apis.errors import ApiError, bad_request, not_found
from mlplane.errors import PermissionDenied
from mlplane.iam.compiled import TriggerInfo
from mlplane.model.builds import USER_SUBSTITUTION, build_config, step_of

from ..auth import Gate
from ..builds import BuildRecord, BuildRunner
from ..gateway import Call, Handler, Surface
from .compute_views import rfc3339

API = load("cloudbuild")
_BUILD_TYPE = "type.googleapis.com/google.devtools.cloudbuild.v1.Build"
_META_TYPE = "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata"


def trigger_id(name: str) -> str:
    """A stable id for a trigger of the model (Cloud Build's are UUIDs)."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlplane-trigger:{name}"))


Configs = Callable[[TriggerInfo], dict[str, Any]]


class CloudBuildApi:
    def __init__(
        self,
        gate: Gate,
        runner: BuildRunner,
        region: str,
        configs: Configs | None = None,
        branch_of: Callable[[str], str] = lambda trigger: "main",
    ) -> None:
        self.gate = gate
        self.runner = runner
        self.region = region
        self._ops: dict[str, str] = {}  # operation name -> build id
        self.branch_of = branch_of  # the branch a push trigger builds
        # A trigger's config (build-images's depends on the project's images and the registry)
        self.configs: Configs = configs or (
            lambda info: build_config(info.name, self.project, self.region, info.runs_as)
        )

    @property
    def project(self) -> str:
        return self.gate.project

    def surface(self) -> Surface:
        handlers: dict[str, Handler] = {}
        for prefix in ("cloudbuild.projects.", "cloudbuild.projects.locations."):
            handlers[prefix + "triggers.get"] = self._trigger_get
            handlers[prefix + "triggers.list"] = self._trigger_list
            handlers[prefix + "triggers.run"] = self._trigger_run
            handlers[prefix + "triggers.create"] = self._trigger_create
            handlers[prefix + "triggers.delete"] = self._trigger_delete
            handlers[prefix + "builds.get"] = self._build_get
            handlers[prefix + "builds.list"] = self._build_list
            handlers[prefix + "builds.cancel"] = self._build_cancel
        handlers["cloudbuild.operations.get"] = self._operation
        handlers["cloudbuild.projects.locations.operations.get"] = self._operation
        return Surface(API, "/cloudbuild/", handlers)

    # -- triggers ------------------------------------------------------------------------------

    def _triggers(self) -> dict[str, TriggerInfo]:
        return dict(self.gate.authorizer.policy.triggers)

    def _check(self, call: Call) -> None:
        project = call.param("projectId") or call.param("projectsId")
        if not project and call.param("name"):
            project = call.param("name").split("/")[1]
        if not project and call.param("parent"):
            project = call.param("parent").split("/")[1]
        if project and project != self.project:
            raise ApiError(
                403, f"The caller does not have permission on project {project}", "forbidden"
            )

    def _trigger_of(self, call: Call) -> TriggerInfo:
        self._check(call)
        wanted = call.param("triggerId") or call.param("triggersId")
        if not wanted and call.param("name"):
            wanted = call.param("name").rstrip("/").rsplit("/", 1)[-1]
        for info in self._triggers().values():
            if wanted in (info.name, trigger_id(info.name)):
                return info
        raise not_found(f"projects/{self.project}/triggers/{wanted}")

    def _trigger_json(self, info: TriggerInfo) -> dict[str, Any]:
        tid = trigger_id(info.name)
        out: dict[str, Any] = {
            "id": tid,
            "name": info.name,
            "description": info.usage,
            "resourceName": f"projects/{self.project}/locations/global/triggers/{tid}",
            "createTime": rfc3339(0.0),
            "serviceAccount": f"projects/{self.project}/serviceAccounts/{info.runs_as}",
            "build": self.configs(info),
            "tags": ["mlplane"],
        }
        if info.event == "manual":
            out["sourceToBuild"] = {"uri": f"local:{self.project}", "ref": "refs/heads/main",
                                    "repoType": "UNKNOWN"}  # fmt: skip
            out["approvalConfig"] = {"approvalRequired": False}
        else:
            out["triggerTemplate"] = {"projectId": self.project, "repoName": self.project,
                                      "branchName": f"^{self.branch_of(info.name)}$"}  # fmt: skip
        return out

    async def _trigger_get(self, call: Call) -> object:
        info = self._trigger_of(call)
        self.gate.require_project(call.caller, "cloudbuild.builds.get")
        return self._trigger_json(info)

    async def _trigger_list(self, call: Call) -> object:
        self._check(call)
        self.gate.require_project(call.caller, "cloudbuild.builds.list")
        return {"triggers": [self._trigger_json(t) for t in self._triggers().values()]}

    async def _trigger_create(self, call: Call) -> object:
        raise ApiError(
            400, "the local agent's triggers are the operational model's (mlplane.toml)",
            "failedPrecondition", "FAILED_PRECONDITION",
        )  # fmt: skip

    async def _trigger_delete(self, call: Call) -> object:
        return await self._trigger_create(call)

    async def _trigger_run(self, call: Call) -> object:
        info = self._trigger_of(call)
        self._authorize_invocation(call, info)
        body = call.body or {}
        source = body.get("source", body) if "source" in body or "triggerId" in body else body
        subs = {str(k): str(v) for k, v in (source.get("substitutions") or {}).items()}
        for key in subs:
            if not USER_SUBSTITUTION.fullmatch(key):
                raise bad_request(
                    f"invalid substitution '{key}': user substitutions start with '_'"
                )
        step = step_of(info.name)
        config = self.configs(info)
        values = {**step.defaults, **subs}
        branch = str(source.get("branchName") or "")
        if branch:
            values["BRANCH_NAME"] = branch
        if info.event != "manual":  # a push trigger builds its branch only
            pattern = f"^{self.branch_of(info.name)}$"
            if not re.fullmatch(pattern, branch):
                raise bad_request(
                    f"trigger '{info.name}' runs on pushes to {pattern} only: give that branch "
                    f"(branchName), not '{branch or 'none'}'"
                )
        try:
            rec = self.runner.start(
                info.name, trigger_id(info.name), call.caller.principal.email, info.runs_as,
                config, values, step.needs_source, str(source.get("commitSha") or branch),
            )  # fmt: skip
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        encoded = base64.urlsafe_b64encode(rec.id.encode()).decode().rstrip("=")
        name = f"operations/build/{self.project}/{encoded}"
        self._ops[name] = rec.id
        return self._op_json(name)

    def _authorize_invocation(self, call: Call, info: TriggerInfo) -> None:
        self.gate.require_project(call.caller, "cloudbuild.builds.create")
        decision = self.gate.authorizer.may_invoke(call.caller.principal, info.name)
        if decision is not None and not decision.allowed:
            raise PermissionDenied(
                f"{call.caller.principal} may not invoke the CI trigger '{info.name}': "
                f"{decision.explain()}",
                decision,
            )

    # -- builds --------------------------------------------------------------------------------

    def _build_json(self, rec: BuildRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": rec.id,
            "name": f"projects/{self.project}/locations/global/builds/{rec.id}",
            "projectId": self.project,
            "status": rec.status,
            "buildTriggerId": rec.trigger_id,
            "serviceAccount": f"projects/{self.project}/serviceAccounts/{rec.service_account}",
            "substitutions": rec.substitutions,
            "options": rec.options,
            "createTime": rfc3339(rec.created),
            "timeout": "3600s",
            "logUrl": f"file://{rec.log}" if rec.log else "",
            "tags": ["mlplane", rec.trigger, f"trigger-{rec.trigger}"],
            "steps": [
                {
                    "id": s.id,
                    "name": s.name,
                    "entrypoint": s.entrypoint,
                    "args": s.args,
                    "status": s.status,
                    **({"exitCode": s.exit_code} if s.exit_code is not None else {}),
                    **({"timing": {"startTime": rfc3339(s.started),
                                   "endTime": rfc3339(s.finished or time.time())}}
                       if s.started else {}),
                }
                for s in rec.steps
            ],
            "results": {"numArtifacts": str(len(rec.objects)), "buildStepOutputs": [],
                        "images": [{"name": i["name"], "digest": i["digest"]}
                                   for i in rec.images]},
        }  # fmt: skip
        if rec.wanted_images:
            out["images"] = rec.wanted_images
        if rec.status_detail:
            out["statusDetail"] = rec.status_detail
        if rec.status == "FAILURE":
            out["failureInfo"] = {"type": "USER_BUILD_STEP", "detail": rec.status_detail}
        if rec.started:
            out["startTime"] = rfc3339(rec.started)
        if rec.finished:
            out["finishTime"] = rfc3339(rec.finished)
        if rec.source.kind == "git":
            out["sourceProvenance"] = {"resolvedRepoSource": {"commitSha": rec.source.commit}}
        elif rec.source.kind == "snapshot":
            out["sourceProvenance"] = {"resolvedStorageSource": {
                "bucket": "local-snapshots", "object": rec.source.snapshot}}  # fmt: skip
        return out

    def _build_of(self, call: Call) -> BuildRecord:
        self._check(call)
        self.gate.require_project(call.caller, "cloudbuild.builds.get")
        wanted = call.param("id") or call.param("buildsId")
        if not wanted and call.param("name"):
            wanted = call.param("name").rstrip("/").rsplit("/", 1)[-1]
        rec = self.runner.builds.get(wanted)
        if rec is None:
            raise not_found(f"projects/{self.project}/builds/{wanted}")
        return rec

    async def _build_get(self, call: Call) -> object:
        return self._build_json(self._build_of(call))

    async def _build_list(self, call: Call) -> object:
        self._check(call)
        self.gate.require_project(call.caller, "cloudbuild.builds.list")
        builds = sorted(self.runner.builds.values(), key=lambda b: b.created, reverse=True)
        return {"builds": [self._build_json(b) for b in builds]}

    async def _build_cancel(self, call: Call) -> object:
        rec = self._build_of(call)
        self.gate.require_project(call.caller, "cloudbuild.builds.update")
        return self._build_json(self.runner.cancel(rec.id))

    # -- operations ----------------------------------------------------------------------------

    def _op_json(self, name: str) -> dict[str, Any]:
        rec = self.runner.builds[self._ops[name]]
        build = self._build_json(rec)
        out: dict[str, Any] = {"name": name, "metadata": {"@type": _META_TYPE, "build": build},
                               "done": rec.done}  # fmt: skip
        if rec.done:
            if rec.status == "SUCCESS":
                out["response"] = {"@type": _BUILD_TYPE, **build}
            else:
                out["error"] = {"code": 2, "message": f"Build {rec.status}: {rec.status_detail}"}
        return out

    async def _operation(self, call: Call) -> object:
        name = call.param("name") or f"operations/{call.param('operationsId')}"
        if name not in self._ops:
            raise not_found(name)
        self.gate.require_project(call.caller, "cloudbuild.builds.get")
        return self._op_json(name)
