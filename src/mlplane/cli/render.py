"""Rich tables for IAM results (imported only by commands that print them)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from mlplane.iam.compare import Comparison
from mlplane.iam.explain import Explanation
from mlplane.iam.synthesis import IamPlan


def _console() -> Console:
    import sys

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def render_plan(plan: IamPlan) -> None:
    console = _console()
    sa = Table(title=f"Service accounts in {plan.project}", title_justify="left")
    for col in ("identity", "email", "kind", "process"):
        sa.add_column(col)
    for s in plan.service_accounts:
        sa.add_row(s.identity, s.email, s.kind, s.process)
    console.print(sa)
    t = Table(title="Custom roles and bindings", title_justify="left", show_lines=True)
    for col in ("principal", "role", "perms", "scope", "justified by"):
        t.add_column(col, overflow="fold")
    for b in plan.bindings:
        members = "\n".join(b.members) if b.members else "(no members)"
        scope = str(b.scope) + (f"\nif {b.condition.title}" if b.condition else "")
        t.add_row(
            f"{b.holder}\n{members}",
            b.role.role_id,
            str(len(b.role.permissions)),
            scope,
            "\n".join(b.actions),
        )
    console.print(t)
    console.print(
        f"{len(plan.service_accounts)} service accounts, {len(plan.roles)} custom roles, "
        f"{len(plan.bindings)} bindings"
    )


def render_explanation(e: Explanation) -> None:
    console = _console()
    console.print(f"[bold]{e.subject}[/bold] ({e.kind}): {e.summary}")
    if e.uses:
        t = Table(show_lines=True)
        for col in ("action", "who", "needs", "held by", "why"):
            t.add_column(col, overflow="fold")
        for u in e.uses:
            via = f"\nvia trigger {', '.join(u.via_triggers)}" if u.via_triggers else ""
            t.add_row(
                u.action, u.who + via, "\n".join(u.permissions), "\n".join(u.holders), u.reason
            )
        console.print(t)
    if e.not_needed:
        console.print(f"{len(e.not_needed)} of its permissions are needed by no action.")


def render_comparisons(rows: Sequence[Comparison]) -> None:
    console = _console()
    t = Table(title="Synthesized roles vs the narrowest predefined roles", title_justify="left")
    for col in (
        "role / holder",
        "perms",
        "predefined roles (greedy narrowest cover)",
        "their perms",
        "ratio",
    ):
        t.add_column(col, overflow="fold")
    for r in rows:
        label = r.subject if r.kind == "role" else f"[bold]{r.subject} (total)[/bold]"
        roles = ", ".join(r.predefined_roles) + (
            f" + {len(r.uncovered)} uncoverable" if r.uncovered else ""
        )
        t.add_row(label, str(r.permissions), roles, str(r.predefined_permissions), f"{r.ratio:.3f}")
    console.print(t)
