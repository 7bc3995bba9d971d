"""`mlplane up` on Google Cloud: is the project ready for the model? Nothing is created or changed.

Three questions, asked of Google's own APIs with the caller's credentials:

1. are the APIs the foundation needs enabled (Service Usage)?
2. is the foundation `mlplane export` creates there: service accounts, custom roles (with the
   model's permissions), bucket, secrets, image repository, Endpoints service, firewall rule,
   address and load balancer, Cloud Build triggers, auxiliary services?
   (`preflight_foundation.py`, reading the export's own `Foundation`: one list, not two)
3. may the caller do what their roles in the model let them do? (`testIamPermissions` on the
   project and on each resource the model grants at; `preflight_access.py`)

Each answer is a `Check` (ok, missing, drift, denied, unchecked, error) with the resource and
its fix. A resource the caller may not read is `unchecked`, not a failure: a team member
usually may not list custom roles; an owner's `mlplane up` checks everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlplane.errors import MlplaneError, PermanentError

if TYPE_CHECKING:
    from mlplane.iam.export.foundation import Foundation
    from mlplane.model.principals import Principal
    from mlplane.workflows.session import Session

Status = Literal["ok", "missing", "drift", "denied", "unchecked", "error"]
FAILING: frozenset[str] = frozenset({"missing", "drift", "denied", "error"})
EXPORT_FIX = (
    "a project owner runs `mlplane export --format gcloud | bash`, or applies "
    "`mlplane export --format terraform -o foundation.tf.json` with `terraform init && "
    "terraform apply`"
)
LOGIN_FIX = "gcloud auth application-default login"
WORKERS = 8  # reads in flight at once (each check is one to a few GET calls)


class NotSignedInToGoogle(PermanentError):
    """No usable Application Default Credentials (or Google refused them)."""

    exit_code = 3


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it stands, and how to fix it."""

    check: str  # the kind of check: apis, service-accounts, custom-roles, bucket, permissions...
    subject: str  # what, in words: "bucket gs://acme-ml-mlplane-artifacts"
    status: Status
    detail: str = ""
    missing: tuple[str, ...] = ()  # what is missing or drifted, each named once
    fix: str = ""
    needed_by: tuple[tuple[str, tuple[str, ...]], ...] = ()  # permission -> the actions needing it

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "subject": self.subject, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if self.missing:
            out["missing"] = list(self.missing)
        if self.fix:
            out["fix"] = self.fix
        if self.needed_by:
            out["needed_by"] = {p: list(actions) for p, actions in self.needed_by}
        return out


@dataclass(frozen=True)
class PreflightReport:
    project: str
    caller: str | None  # the caller's IAM member, when the token says whose it is
    checks: tuple[Check, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "provider": "gcp",
            "caller": self.caller,
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
        }


def in_parallel(tasks: Sequence[Callable[[], list[Check]]]) -> list[Check]:
    """Run independent checks at once; their lines keep the order of `tasks`."""
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(tasks))) as pool:
        futures = [pool.submit(task) for task in tasks]
        return [check for f in futures for check in f.result()]


def check_project(session: Session) -> PreflightReport:
    """Check the session's Google Cloud project against its model (read-only)."""
    from mlplane.iam.export.foundation import build_foundation
    from mlplane.iam.synthesis import synthesize

    loaded = session.loaded
    foundation = build_foundation(loaded, synthesize(loaded))
    try:
        return _check(session, foundation)
    except MlplaneError as exc:
        if _is_credentials_error(exc):
            raise NotSignedInToGoogle(_login_message(exc)) from None
        raise


def _check(session: Session, foundation: Foundation) -> PreflightReport:
    from mlplane.workflows import preflight_access, preflight_foundation

    api = session.api  # credentials are found here: none is one clear error, before any call
    caller, who_note = _caller(session)
    found = preflight_foundation.check(api, foundation)
    access = preflight_access.check(
        api, foundation, session.loaded, session.authz, caller, found.absent, who_note
    )
    member = caller.member if caller is not None else None
    return PreflightReport(foundation.project, member, (*found.checks, *access))


def _caller(session: Session) -> tuple[Principal | None, str]:
    """The caller's principal, or None with the reason (a token whose owner Google does not
    tell: the caller's permissions are then not checked)."""
    from mlplane.apis.credentials import CredentialError, NotSignedIn

    try:
        return session.principal, ""
    except (CredentialError, NotSignedIn) as exc:  # the token endpoint refused the token
        raise NotSignedInToGoogle(_login_message(exc)) from None
    except MlplaneError as exc:
        if _is_credentials_error(exc):
            raise
        return None, str(exc)


def _is_credentials_error(exc: MlplaneError) -> bool:
    from mlplane.workflows import compose

    return compose.is_unauthorized(exc) or isinstance(exc, NotSignedInToGoogle)


def _login_message(exc: Exception) -> str:
    text = str(exc).strip()
    if LOGIN_FIX in text:
        return text
    return f"{text}; sign in with `{LOGIN_FIX}`"
