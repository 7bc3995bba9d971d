"""`mlplane iam audit`: compare an IAM policy (gcloud JSON) with the operational model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlplane.cli.context import Context, emit_json

if TYPE_CHECKING:
    from mlplane.iam.audit.findings import AuditReport

EXIT_FINDINGS = 4
DEFAULT_FAIL_ON = "medium"  # docs/decisions/0200-audit-severity.md
SEVERITIES = ("info", "low", "medium", "high", "critical")
_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    parser.add_argument(
        "--policy",
        required=True,
        type=Path,
        metavar="FILE",
        help="the project's policy: `gcloud projects get-iam-policy PROJECT --format json`",
    )
    parser.add_argument(
        "--roles",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="custom roles as `gcloud iam roles describe ID --project P --format json` prints "
        "them (one role or a list); repeatable. `gcloud iam roles list` output is accepted, but "
        "it has no includedPermissions: those roles are reported as unexpandable",
    )
    parser.add_argument(
        "--resource-policy",
        dest="resource_policies",
        action="append",
        default=[],
        metavar="KIND:NAME=FILE",
        help="a resource's policy, same shape; KIND: bucket, secret, repository, "
        "endpointsService, serviceAccount (e.g. serviceAccount:EMAIL=sa.json); repeatable",
    )
    parser.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    parser.add_argument(
        "--fail-on",
        choices=(*SEVERITIES, "never"),
        default=DEFAULT_FAIL_ON,
        help=f"exit {EXIT_FINDINGS} when a finding is at or above this severity "
        f"(default: {DEFAULT_FAIL_ON})",
    )
    parser.set_defaults(run=run_audit)


def run_audit(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.iam.audit.engine import audit
    from mlplane.iam.audit.findings import Severity
    from mlplane.iam.audit.policy_files import parse_scope_arg, read_policy_set
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    resources = [parse_scope_arg(text) for text in args.resource_policies]
    loaded = load_project(ctx.project_path)
    plan = synthesize(loaded)
    policies = read_policy_set(plan.project, args.policy, args.roles, resources)
    report = audit(plan, policies, admins=loaded.project.team.admins)
    threshold = None if args.fail_on == "never" else Severity.parse(args.fail_on)
    if args.fmt == "json":
        emit_json(report.to_dict(threshold))
    else:
        render_table(report, args.fail_on)
    return EXIT_FINDINGS if threshold is not None and report.at_or_above(threshold) else 0


def _shorten(items: tuple[str, ...], n: int = 3) -> str:
    more = f"\n(+{len(items) - n} more)" if len(items) > n else ""
    return "\n".join(items[:n]) + more


def render_table(report: AuditReport, fail_on: str) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    if not report.findings:
        console.print(
            f"[green]no findings[/]: the IAM policy of {report.project} matches the model"
        )
        return
    table = Table(title=f"IAM audit of {report.project}", title_justify="left", show_lines=True)
    for col in ("severity", "code", "principal", "scope", "roles / permissions", "why"):
        table.add_column(col, overflow="fold")
    for f in report.findings:
        sev = f.severity.label
        scope = f"{f.scope}\nif {f.condition}" if f.condition else f.scope
        perms = _shorten(tuple(f.permission_list()))
        what = "\n".join(filter(None, (_shorten(f.roles), perms)))
        table.add_row(f"[{_STYLE[sev]}]{sev}[/]", f.code, f.principal, scope, what, f.explanation)
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    console.print(f"{len(report.findings)} findings: {counts}; --fail-on {fail_on}")
