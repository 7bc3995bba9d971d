"""The project file, `mlplane.toml`: the GCP project, the team, and what to add or change."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlplane.model.operational import Action, Identity, Process, Spec, Trigger
from mlplane.model.principals import Principal

_PROJECT_ID = re.compile(r"[a-z][-a-z0-9]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_BUCKET = re.compile(r"[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9]")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,255}")
_PREFIX = re.compile(r"[a-z][-a-z0-9]{0,13}[a-z0-9]|[a-z]")


def _members(values: tuple[str, ...]) -> tuple[str, ...]:
    for v in values:
        Principal.parse(v)  # raises ValueError naming the bad member
    return values


class ProjectSection(Spec):
    id: str = Field(description="the GCP project id")
    region: str = "us-central1"
    zone: str = "us-central1-a"
    provider: Literal["local", "gcp"] = "local"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _PROJECT_ID.fullmatch(v):
            raise ValueError(
                f"'{v}' is not a GCP project id (6-30 characters: lowercase letters, digits, "
                "dashes; starts with a letter, does not end with a dash)"
            )
        return v

    @model_validator(mode="after")
    def _zone_in_region(self) -> ProjectSection:
        if not _REGION.fullmatch(self.region):
            raise ValueError(f"region '{self.region}' is not a GCP region name (e.g. us-central1)")
        if not _ZONE.fullmatch(self.zone):
            raise ValueError(f"zone '{self.zone}' is not a GCP zone name (e.g. us-central1-a)")
        if not self.zone.startswith(self.region + "-"):
            raise ValueError(f"zone '{self.zone}' is not in region '{self.region}'")
        return self


class TeamSection(Spec):
    """The team's user principals. Each process's user role goes to these unless the process
    names its own. `groups` lists members of groups, for local enforcement only (on GCP,
    Google resolves group membership)."""

    principals: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = {}
    admins: tuple[str, ...] = ()

    _p = field_validator("principals", "admins")(classmethod(lambda cls, v: _members(v)))

    @field_validator("principals")
    @classmethod
    def _no_service_accounts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            kind = Principal.parse(m).kind
            if kind not in ("user", "group", "domain"):
                raise ValueError(f"'{m}': team principals are users, groups or domains")
        return v


class NamingSection(Spec):
    prefix: str = "mlplane"

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX.fullmatch(v):
            raise ValueError(
                f"prefix '{v}' must be 1-15 lowercase letters, digits or dashes, starting with a "
                "letter (service account ids are at most 30 characters)"
            )
        return v


class LocalSection(Spec):
    """Settings of the `local` provider."""

    lb_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="port of the load balancer on 127.0.0.1; 0 picks a free one at bootstrap",
    )


class NotebooksSection(Spec):
    """Notebook VMs (experimentation)."""

    idle_timeout_minutes: int = Field(
        default=180, ge=1, le=7 * 24 * 60, description="stop a notebook idle this long"
    )


class DataSection(Spec):
    """One switch per store of the data SDK: the local backend, or the GCP service."""

    warehouse: Literal["duckdb", "bigquery"] = "duckdb"
    oltp: Literal["sqlite", "spanner"] = "sqlite"
    graph: Literal["embedded", "neo4j"] = "embedded"
    artifacts: Literal["local", "gcs"] = "local"
    secrets: Literal["local", "secret-manager"] = "local"
    spanner_instance: str = "mlplane"
    spanner_database: str = "mlplane"
    neo4j_uri: str = "neo4j://127.0.0.1:7687"


_EXISTING = re.compile(r"(bucket|secret|repository|endpointsService):[a-z0-9][a-z0-9-]*")


class ResourcesSection(Spec):
    """Named resources that grants are scoped to. Values may use {project} and {region}.
    `existing` lists those the team already has (`bucket:artifacts`, ...): `mlplane export`
    reads them (Terraform `data` sources; the gcloud script checks them) instead of creating
    them."""

    buckets: dict[str, str] = {"artifacts": "{project}-mlplane-artifacts"}
    secrets: dict[str, str] = {"graph": "graph-readonly"}
    repositories: dict[str, str] = {"images": "mlplane"}
    endpoints_services: dict[str, str] = {"models": "models.endpoints.{project}.cloud.goog"}
    existing: tuple[str, ...] = ()

    @field_validator("existing")
    @classmethod
    def _existing(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for ref in v:
            if not _EXISTING.fullmatch(ref):
                raise ValueError(
                    f"'{ref}' is not KIND:REF (bucket, secret, repository or endpointsService)"
                )
        return v


_STATE_PREFIX = re.compile(r"([A-Za-z0-9_][A-Za-z0-9._-]*/){0,8}")
STATE_BUCKET_REF = "state"
STATE_BUCKET = "{project}-mlplane-state"


class StateSection(Spec):
    """Where the team state lives with `provider = "gcp"`: one object (`PREFIX` + `state.db`)
    in a bucket of [resources.buckets], named by its ref, with a lock object (`state.lock`)
    beside it (docs/decisions/1500). When `bucket` is the default ref and [resources.buckets]
    does not list it, it is `{project}-mlplane-state`."""

    bucket: str = Field(default=STATE_BUCKET_REF, description="a ref of [resources.buckets]")
    prefix: str = Field(default="mlplane/", max_length=200, description="'' or ends with '/'")
    lock_timeout: float = Field(
        default=0.0,
        ge=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="seconds a mutating command waits for another command's lock (0: fail at "
        "once, naming the holder)",
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _STATE_PREFIX.fullmatch(v):
            raise ValueError(
                f"'{v}' is not an object prefix: empty, or up to 8 names each ending with '/' "
                "(letters, digits, '.', '_', '-'; a name does not start with '.' or '-')"
            )
        return v


class CiSection(Spec):
    """Where the CI triggers take their source, and which manual triggers wait for approval.

    Manual triggers run a build configuration fixed in the trigger (not read from the branch
    the invoker picks); `approval` lists the manual triggers whose builds wait until someone
    holding `cloudbuild.builds.approve` ([team] admins) approves them (docs/decisions/0902)."""

    repository: str = Field(
        default="https://github.com/OWNER/REPO",
        description="the repository the triggers build (a GitHub https URL)",
    )
    branch: str = "main"
    approval: tuple[str, ...] = ()
    image: str = Field(
        default="{region}-docker.pkg.dev/{project}/mlplane/mlplane:latest",
        description="the image that runs mlplane's pipelines in the builds",
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not re.fullmatch(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", v):
            raise ValueError(
                f"'{v}' is not a GitHub repository URL (https://github.com/OWNER/REPO)"
            )
        return v


class AuxiliaryInstance(Spec):
    """An instance running an auxiliary service (static, passive), as the aux-runtime identity.
    Its name starts with `aux-`: the CI/CD identity may reset only such VMs."""

    name: str = Field(pattern=r"^aux-[a-z0-9]([-a-z0-9]{0,56}[a-z0-9])?$")
    image: str = Field(min_length=1, description="the container image it runs")
    zone: str | None = None
    machine_type: str = "e2-small"


class RunService(Spec):
    """A Cloud Run service of an auxiliary service (dynamic: the build-images trigger deploys its
    revisions), running as the aux-runtime identity."""

    name: str = Field(pattern=r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")
    image: str = Field(min_length=1)
    region: str | None = None


class AuxiliarySection(Spec):
    instances: tuple[AuxiliaryInstance, ...] = ()
    run_services: tuple[RunService, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> AuxiliarySection:
        for kind, names in (
            ("instances", [i.name for i in self.instances]),
            ("run_services", [r.name for r in self.run_services]),
        ):
            dup = next((n for n in names if names.count(n) > 1), None)
            if dup:
                raise ValueError(f"{kind}: '{dup}' is declared twice")
        return self


class ProjectFile(Spec):
    """`mlplane.toml`. Lists under actions / identities / triggers / processes add entries, or
    replace the shipped entry with the same id."""

    project: ProjectSection
    team: TeamSection = TeamSection()
    naming: NamingSection = NamingSection()
    resources: ResourcesSection = ResourcesSection()
    local: LocalSection = LocalSection()
    notebooks: NotebooksSection = NotebooksSection()
    data: DataSection = DataSection()
    ci: CiSection = CiSection()
    state: StateSection = StateSection()
    auxiliary: AuxiliarySection = AuxiliarySection()
    members: dict[str, tuple[str, ...]] = Field(
        default={}, description="per process id: who gets its user role (default: the team)"
    )
    actions: tuple[Action, ...] = ()
    identities: tuple[Identity, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    processes: tuple[Process, ...] = ()
    disabled_actions: tuple[str, ...] = ()

    @field_validator("members")
    @classmethod
    def _member_lists(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for members in v.values():
            _members(members)
        return v

    def process_members(self, process_id: str) -> tuple[str, ...]:
        return self.members.get(process_id, self.team.principals)

    def resolve(self, template: str) -> str:
        return template.format(project=self.project.id, region=self.project.region)

    @property
    def state_bucket(self) -> str:
        """The name of the bucket that holds the team state (`provider = "gcp"`)."""
        return self.resolve(self.resources.buckets[self.state.bucket])

    @model_validator(mode="before")
    @classmethod
    def _state_bucket(cls, data: Any) -> Any:
        """The state's default bucket ref names `{project}-mlplane-state` unless the file's own
        [resources.buckets] says otherwise (files written before [state] list only artifacts)."""
        if not isinstance(data, dict):
            return data
        state, resources = data.get("state", {}), data.get("resources", {})
        if not isinstance(state, dict) or not isinstance(resources, dict):
            return data
        if state.get("bucket", STATE_BUCKET_REF) != STATE_BUCKET_REF:
            return data
        buckets = resources.get("buckets", ResourcesSection().buckets)
        if not isinstance(buckets, dict) or STATE_BUCKET_REF in buckets:
            return data
        buckets = {**buckets, STATE_BUCKET_REF: STATE_BUCKET}
        return {**data, "resources": {**resources, "buckets": buckets}}

    @model_validator(mode="after")
    def _resource_names(self) -> ProjectFile:
        if self.state.bucket not in self.resources.buckets:
            raise ValueError(
                f"state.bucket: '{self.state.bucket}' names no bucket in [resources.buckets] "
                f"(known: {', '.join(sorted(self.resources.buckets))})"
            )
        for ref, name in self.resources.buckets.items():
            bucket = self.resolve(name)
            if not _BUCKET.fullmatch(bucket) or "goog" in bucket:
                raise ValueError(f"resources.buckets.{ref}: '{bucket}' is not a valid bucket name")
        tables = {
            "bucket": self.resources.buckets,
            "secret": self.resources.secrets,
            "repository": self.resources.repositories,
            "endpointsService": self.resources.endpoints_services,
        }
        for i, ref in enumerate(self.resources.existing):
            kind, _, name = ref.partition(":")
            if name not in tables[kind]:
                raise ValueError(f"resources.existing[{i}]: '{ref}' names no {kind} '{name}'")
        for ref, name in self.resources.secrets.items():
            if not _SECRET.fullmatch(self.resolve(name)):
                raise ValueError(
                    f"resources.secrets.{ref}: '{name}' is not a valid secret id "
                    "(letters, digits, '-' and '_')"
                )
        return self
