"""Parsing command-line resource references and subjects for `iam check`."""

from __future__ import annotations

from mlplane.errors import ConfigError
from mlplane.iam.authorizer import Authorizer
from mlplane.model.refs import ResourceRef

KINDS = (
    "project",
    "bucket",
    "secret",
    "serviceAccount",
    "repository",
    "endpointsService",
    "instance",
    "instanceTemplate",
    "instanceGroupManager",
    "autoscaler",
    "healthCheck",
    "backendService",
    "urlMap",
    "targetHttpProxy",
    "forwardingRule",
    "trigger",
    "cloudRunService",
)


def parse_resource(authz: Authorizer, text: str) -> ResourceRef:
    """`gs://BUCKET/PATH`, `KIND:NAME`, or `serviceAccount:IDENTITY` (an identity id)."""
    project = authz.policy.project
    if text.startswith("gs://"):
        bucket, _, path = text[5:].partition("/")
        if not bucket or ".." in path.split("/"):
            raise ConfigError(
                "--resource", "", f"'{text}' is not a gs://BUCKET/PATH inside a bucket"
            )
        return ResourceRef("bucket", bucket, project)
    kind, sep, name = text.partition(":")
    if not sep or kind not in KINDS or (not name and kind != "project"):
        raise ConfigError(
            "--resource", "", f"'{text}': write KIND:NAME with KIND one of {', '.join(KINDS)}"
        )
    if kind == "serviceAccount" and name in authz.policy.identities:
        name = authz.policy.identities[name]
    return ResourceRef(kind, name or project, project)


def validate_subject(authz: Authorizer, what: str) -> None:
    """An action id of the model, or a permission in Google's catalog; else a clear error."""
    policy = authz.policy
    if what in policy.actions:
        return
    known = {p for a in policy.actions.values() for g in a.grants for p in g.permissions}
    if what in known:
        return
    from mlplane.iam.catalog import load_catalog  # only for unknown names: it is 6 MB

    catalog = load_catalog()
    if what in catalog:
        return
    import difflib

    close = difflib.get_close_matches(what, list(policy.actions), n=2) or catalog.suggest(what)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ConfigError(
        "argument",
        "WHAT",
        f"'{what}' is no action of the model and no permission in Google's catalog{hint}",
    )
