"""`mlplane iam audit`: compare an IAM policy (gcloud JSON) with the operational model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mlplane.cli.context import Context

if TYPE_CHECKING:
    from mlplane.iam.audit.findings import AuditReport, Finding, Severity

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
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("table", "json", "jsonl"),
        default="table",
        help="table: one row per principal and finding code, most severe first (--limit); "
        "json: one document, findings most severe first; jsonl: one finding per line, written "
        "as found, then a summary line (default: table)",
    )
    parser.add_argument(
        "--limit",
        type=_count,
        default=50,
        metavar="N",
        help="table rows to show (0: all; default 50); the summary line counts them all",
    )
    parser.add_argument(
        "--max-permissions",
        type=_count_or_all,
        default=None,
        metavar="N|all",
        help="json/jsonl: list at most N permissions per finding, in name order "
        "(`permission_count` counts them all; default: all)",
    )
    parser.add_argument(
        "--fail-on",
        choices=(*SEVERITIES, "never"),
        default=DEFAULT_FAIL_ON,
        help=f"exit {EXIT_FINDINGS} when a finding is at or above this severity "
        f"(default: {DEFAULT_FAIL_ON})",
    )
    parser.set_defaults(run=run_audit)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is negative")
    return value


def _count_or_all(text: str) -> int | None:
    return None if text == "all" else _count(text)


def run_audit(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.iam.audit.engine import audit, iter_findings
    from mlplane.iam.audit.findings import Severity
    from mlplane.iam.audit.policy_files import parse_scope_arg, read_policy_set
    from mlplane.iam.loading import load_project
    from mlplane.iam.synthesis import synthesize

    resources = [parse_scope_arg(text) for text in args.resource_policies]
    loaded = load_project(ctx.project_path)
    plan = synthesize(loaded)
    policies = read_policy_set(plan.project, args.policy, args.roles, resources)
    admins = loaded.project.team.admins
    threshold = None if args.fail_on == "never" else Severity.parse(args.fail_on)
    out = sys.stdout
    if args.fmt == "jsonl":  # written as found: memory does not grow with the findings
        worst = write_jsonl(
            plan.project, iter_findings(plan, policies, admins=admins), out, threshold,
            args.max_permissions,
        )  # fmt: skip
        failed = threshold is not None and worst is not None and worst >= threshold
        return EXIT_FINDINGS if failed else 0
    report = audit(plan, policies, admins=admins)
    if args.fmt == "json":
        write_json(report, out, threshold, args.max_permissions)
    else:
        render_table(report, args.fail_on, args.limit)
    return EXIT_FINDINGS if threshold is not None and report.at_or_above(threshold) else 0


def write_json(
    report: AuditReport, out: TextIO, fail_on: Severity | None, limit: int | None
) -> None:
    """The report as one JSON document, each finding encoded and written in turn."""
    import json

    head = json.dumps(report.header(fail_on))
    out.write(head[:-1] + ', "findings": [')
    for i, f in enumerate(report.findings):
        out.write(("," if i else "") + "\n" + f.to_json(limit))
    out.write("\n]}\n")


def write_jsonl(
    project: str,
    findings: Iterator[Finding],
    out: TextIO,
    fail_on: Severity | None,
    limit: int | None,
) -> Severity | None:
    """One line per finding as found (`"type": "finding"`), then a summary line; returns the
    highest severity seen."""
    import json

    from mlplane.iam.audit.findings import Severity

    seen = dict.fromkeys(sorted(Severity, reverse=True), 0)
    for f in findings:
        seen[f.severity] += 1
        out.write(f.to_json(limit, type="finding") + "\n")
    worst = max((s for s, n in seen.items() if n), default=None)
    summary: dict[str, object] = {
        "type": "summary",
        "project": project,
        "summary": {s.label: n for s, n in seen.items()},
    }
    if fail_on is not None:
        summary["fail_on"] = fail_on.label
        summary["failed"] = worst is not None and worst >= fail_on
    out.write(json.dumps(summary) + "\n")
    return worst


def _shorten(items: list[str], n: int = 3) -> str:
    more = f"\n(+{len(items) - n} more)" if len(items) > n else ""
    return "\n".join(items[:n]) + more


def summary_rows(report: AuditReport) -> list[dict[str, Any]]:
    """Findings grouped by (severity, code, principal), most severe and most frequent first."""
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for f in report.findings:
        row = rows.setdefault(
            (f.severity, f.code, f.principal),
            {"finding": f, "count": 0, "scopes": {}, "roles": {}, "permissions": 0},
        )
        row["count"] += 1
        scope = f"{f.scope} if {f.condition}" if f.condition else f.scope
        row["scopes"][scope] = None
        row["roles"].update(dict.fromkeys(f.roles))
        row["permissions"] += f.permission_count
    return sorted(
        rows.values(),
        key=lambda r: (-r["finding"].severity, -r["count"], r["finding"].code,
                       r["finding"].principal),
    )  # fmt: skip


def render_table(report: AuditReport, fail_on: str, limit: int = 50) -> None:
    """One row per principal and finding code (a principal's excess on 300 buckets is one row),
    at most `limit` rows (0: all), then the totals."""
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    if not report.findings:
        console.print(
            f"[green]no findings[/]: the IAM policy of {report.project} matches the model"
        )
        return
    rows = summary_rows(report)
    shown = rows[:limit] if limit else rows
    table = Table(title=f"IAM audit of {report.project}", title_justify="left", show_lines=True)
    for col in ("severity", "code", "principal", "findings", "scopes", "roles / permissions"):
        table.add_column(col, overflow="fold")
    table.add_column("why (first finding)", overflow="fold")
    for row in shown:
        f = row["finding"]
        sev = f.severity.label
        what = "\n".join(filter(None, (_shorten(list(row["roles"])), _perms(row, f))))
        table.add_row(
            f"[{_STYLE[sev]}]{sev}[/]", f.code, f.principal, str(row["count"]),
            _shorten(list(row["scopes"]), 2), what, f.explanation,
        )  # fmt: skip
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    hidden = f"; {len(rows) - len(shown)} more rows (--limit 0 shows all)" if limit else ""
    console.print(
        f"{len(report.findings)} findings in {len(rows)} rows: {counts}; --fail-on {fail_on}"
        + (hidden if len(rows) > len(shown) else "")
    )


def _perms(row: dict[str, Any], first: Finding) -> str:
    if row["count"] > 1:
        return f"{row['permissions']} permissions" if row["permissions"] else ""
    n = first.permission_count
    more = f"\n(+{n - 3} more)" if n > 3 else ""
    return "\n".join(first.permission_list(3)) + more
