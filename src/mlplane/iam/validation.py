"""Cross-reference checks on a merged operational model; each failure names file and field."""

from __future__ import annotations

from collections.abc import Callable

from mlplane.errors import ConfigError
from mlplane.iam.catalog import Catalog
from mlplane.iam.conditions import compile_condition
from mlplane.model.operational import Condition, Grant, OperationalModel
from mlplane.model.project import ProjectFile

Origins = dict[str, tuple[str, str]]
SHIPPED = "operational_model.toml (shipped with mlplane)"


def _check_condition(
    entry: str,
    field: str,
    grant: Grant,
    seen: dict[str, tuple[str, Condition]],
    err: Callable[[str, str, str], ConfigError],
) -> None:
    """Project scope only; one id names one condition; the authorizer can evaluate it."""
    cond = grant.condition
    assert cond is not None
    if grant.scope_kind != "project":
        raise err(entry, field, "conditions go on project scope")
    first = seen.setdefault(cond.id, (entry, cond))
    if first[1] != cond:
        raise err(entry, f"{field}.id", f"'{cond.id}' is defined differently in {first[0]}")
    try:
        compile_condition(cond.expression)
    except ValueError as exc:
        raise err(entry, field, str(exc)) from None


def _raiser(origins: Origins) -> Callable[[str, str, str], ConfigError]:
    def err(entry: str, field: str, message: str) -> ConfigError:
        source, loc = origins[entry]
        return ConfigError(source, f"{loc}.{field}" if field else loc, message)

    return err


def _scope_targets(project: ProjectFile, model: OperationalModel) -> dict[str, set[str]]:
    r = project.resources
    return {
        "bucket": set(r.buckets),
        "secret": set(r.secrets),
        "repository": set(r.repositories),
        "endpointsService": set(r.endpoints_services),
        "serviceAccount": {i.id for i in model.identities},
    }


def validate_model(
    model: OperationalModel,
    project: ProjectFile,
    origins: Origins,
    catalog: Catalog,
    disabled: set[str],
    source: str = "mlplane.toml",
) -> None:
    err = _raiser(origins)
    for a in model.all_build_actions():
        origins.setdefault(f"actions:{a.id}", (SHIPPED, "builds"))
    for _, a in model.state_actions():
        origins.setdefault(f"actions:{a.id}", (SHIPPED, "state"))
    processes = {p.id for p in model.processes}
    identities = {i.id: i for i in model.identities}
    actions = {a.id for a in model.actions} | disabled
    triggers = {t.name for t in model.triggers}

    for p in model.processes:
        sa = identities.get(p.service_account)
        if sa is None or sa.kind != "process" or sa.process != p.id:
            raise err(
                f"processes:{p.id}",
                "service_account",
                f"'{p.service_account}' is not a process identity of process '{p.id}'",
            )
    for i in model.identities:
        if i.process not in processes:
            raise err(f"identities:{i.id}", "process", f"no process '{i.process}'")
        for j, ref in enumerate((i.actions or ()) + i.exclude):
            if ref not in actions:
                field = f"actions[{j}]" if i.actions is not None else f"exclude[{j}]"
                raise err(f"identities:{i.id}", field, f"no action '{ref}'")
    for t in model.triggers:
        if t.process not in processes:
            raise err(f"triggers:{t.name}", "process", f"no process '{t.process}'")
        if t.runs_as not in identities:
            raise err(f"triggers:{t.name}", "runs_as", f"no identity '{t.runs_as}'")
    derived = {a.id for a in model.derived_actions()}
    for a in model.actions:
        if a.id in derived:
            raise err(
                f"actions:{a.id}",
                "id",
                f"'{a.id}' is the id of an action mlplane derives (a build's or the team "
                "state's); choose another",
            )
    targets = _scope_targets(project, model)
    conditions: dict[str, tuple[str, Condition]] = {}
    for a in (*model.actions, *model.derived_actions()):
        entry = f"actions:{a.id}"
        if a.process not in processes:
            raise err(entry, "process", f"no process '{a.process}'")
        for j, name in enumerate(a.via_triggers):
            if name not in triggers:
                raise err(entry, f"via_triggers[{j}]", f"no trigger '{name}'")
        for g_i, g in enumerate(a.grants):
            if g.scope_kind != "project" and g.scope_ref not in targets[g.scope_kind]:
                where = (
                    "identities"
                    if g.scope_kind == "serviceAccount"
                    else f"[resources] of {project.project.id}"
                )
                raise err(
                    entry,
                    f"grants[{g_i}].scope",
                    f"'{g.scope}' names no {g.scope_kind} '{g.scope_ref}' in {where}",
                )
            if g.condition is not None:
                _check_condition(entry, f"grants[{g_i}].condition", g, conditions, err)
            for p_i, perm in enumerate(g.permissions):
                if perm not in catalog:
                    close = catalog.suggest(perm)
                    hint = f"; closest: {', '.join(close)}" if close else ""
                    raise err(
                        entry,
                        f"grants[{g_i}].permissions[{p_i}]",
                        f"'{perm}' is not in Google's IAM permission catalog{hint}",
                    )
    _check_coverage(model, err)
    _check_attachable(model, err)
    _check_state(model, source)
    for j, name in enumerate(project.ci.approval):
        trigger = model.trigger(name)
        if trigger is None or trigger.event != "manual":
            raise ConfigError(source, f"ci.approval[{j}]", f"'{name}' is not a manual trigger")
    for process_id in project.members:
        if process_id not in processes:
            raise ConfigError(source, f"members.{process_id}", "no such process")


def _check_coverage(model: OperationalModel, err: Callable[[str, str, str], ConfigError]) -> None:
    """Every service-account action is performed by an identity of its own process."""
    held = {a.id for i in model.identities for a in model.identity_actions(i)}
    for a in model.actions:
        if a.service_side and a.id not in held:
            raise err(
                f"actions:{a.id}",
                "who",
                f"no identity of process '{a.process}' performs this service-account action",
            )


def _check_attachable(model: OperationalModel, err: Callable[[str, str, str], ConfigError]) -> None:
    """Users may attach (actAs) an identity only if it holds no trigger-reserved action:
    otherwise a user could do on a VM what the model reserves for a CI trigger."""
    for a in model.actions:
        if not a.user_side:
            continue
        for g in a.grants:
            if g.scope_kind != "serviceAccount" or "iam.serviceAccounts.actAs" not in g.permissions:
                continue
            ident = model.identity(g.scope_ref)
            assert ident is not None  # checked above
            reserved = [x.id for x in model.identity_actions(ident) if x.via_triggers]
            if reserved:
                raise err(
                    f"identities:{ident.id}",
                    "exclude" if ident.actions is None else "actions",
                    f"users may attach '{ident.id}' (action {a.id} grants them actAs on it), so "
                    f"it must not hold trigger-only actions ({', '.join(reserved)}); exclude them "
                    "or attach another identity",
                )


def _check_state(model: OperationalModel, source: str) -> None:
    """Every reader and writer of the team state exists; users never write the state into a
    bucket that a trigger-only action writes (they could then write what only the trigger may)."""
    state = model.state
    if state is None:
        return
    for field in ("readers", "writers"):
        for j, holder in enumerate(getattr(state, field)):
            _, users, process = holder.rpartition("users:")
            if (model.process(process) is None) if users else (model.identity(holder) is None):
                what = f"no process '{process}'" if users else f"no identity '{holder}'"
                raise ConfigError(SHIPPED, f"state.{field}[{j}]", what)
    scope = f"bucket:{state.bucket}"
    users_write = any(h.startswith("users:") for h in state.writers)
    for a in model.actions:
        writes = any(
            g.scope == scope and "storage.objects.create" in g.permissions for g in a.grants
        )
        if users_write and a.via_triggers and writes:
            raise ConfigError(
                source,
                "state.bucket",
                f"'{state.bucket}' is the bucket that only the trigger(s) "
                f"{', '.join(a.via_triggers)} write ({a.id}); users who record the team state "
                "there could write it too: give the state a bucket of its own",
            )
