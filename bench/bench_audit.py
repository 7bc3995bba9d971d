"""Audit of a generated 10,000-binding IAM policy against the shipped model.

Usage: python bench/bench_audit.py [RUNS] [BINDINGS]. Goal: the audit under 1 s. The policy
mixes predefined roles (basic ones included), users, groups, service accounts, public members
and IAM conditions, on the project and on resources. Prints the median of RUNS for the audit
alone and for reading the gcloud JSON plus the audit, each with its ratio to the goal.
The catalog is loaded once beforehand (it is cached per process; its load time is printed).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlplane.iam.audit.engine import audit
from mlplane.iam.audit.policy_files import read_policy_set
from mlplane.iam.catalog import load_catalog
from mlplane.iam.loading import load_project
from mlplane.iam.synthesis import IamPlan, Scope, synthesize

GOAL_S = 1.0
PROJECT = """[project]
id = "acme-ml"
[team]
principals = ["user:alice@acme.com", "group:ml@acme.com"]
"""


def generate(plan: IamPlan, n: int, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    """A project policy of ~n bindings and one service-account policy of the rest (~5%)."""
    rng = random.Random(seed)
    catalog = load_catalog()
    roles = sorted(catalog.roles)
    common = [r for r in roles if len(catalog.roles[r].permissions) < 200]
    heavy = ["roles/editor", "roles/viewer", "roles/iam.serviceAccountUser", "roles/owner"]
    members = (
        [f"user:user{i}@acme.com" for i in range(3000)]
        + [f"group:team{i}@acme.com" for i in range(200)]
        + [f"serviceAccount:svc{i}@acme-ml.iam.gserviceaccount.com" for i in range(300)]
        + [sa.member for sa in plan.service_accounts]
        + ["allUsers", "domain:acme.com", "deleted:user:gone@acme.com?uid=1"]
    )
    bindings: list[dict[str, Any]] = []
    for i in range(n):
        role = rng.choice(heavy) if rng.random() < 0.01 else rng.choice(common)
        binding: dict[str, Any] = {
            "role": role,
            "members": sorted(set(rng.choices(members, k=rng.randint(1, 4)))),
        }
        if rng.random() < 0.1:
            binding["condition"] = {
                "title": f"cond {i % 50}",
                "expression": f'resource.name.startsWith("projects/acme-ml/x{i % 50}")',
            }
        bindings.append(binding)
    split = n - n // 20
    project = {"bindings": bindings[:split], "etag": "BwX=", "version": 3}
    resource = {"bindings": bindings[split:], "etag": "BwX=", "version": 3}
    return project, resource


def median_s(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    t = time.perf_counter()
    load_catalog()
    catalog_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "mlplane.toml").write_text(PROJECT)
        plan = synthesize(load_project(tmp / "mlplane.toml"))
        project, resource = generate(plan, n)
        (tmp / "policy.json").write_text(json.dumps(project))
        (tmp / "sa.json").write_text(json.dumps(resource))
        sa = Scope("serviceAccount", plan.service_accounts[1].email)

        def read() -> Any:
            return read_policy_set(plan.project, tmp / "policy.json", (), [(sa, tmp / "sa.json")])

        policies = read()
        report = audit(plan, policies)
        audit_s = median_s(lambda: audit(plan, policies), runs)
        total_s = median_s(lambda: audit(plan, read()), runs)
    bindings = sum(len(p.bindings) for p in policies.policies)
    grants = sum(len(b.members) for p in policies.policies for b in p.bindings)
    print(f"policy: {bindings} bindings, {grants} member grants; {len(report.findings)} findings")
    print(f"catalog load (once per process): {catalog_s * 1000:.0f} ms")
    print(
        f"audit:         median {audit_s * 1000:.0f} ms of {runs} runs; "
        f"{audit_s / GOAL_S:.2f}x the {GOAL_S:.0f} s goal"
    )
    print(
        f"read + audit:  median {total_s * 1000:.0f} ms of {runs} runs; "
        f"{total_s / GOAL_S:.2f}x the {GOAL_S:.0f} s goal"
    )


if __name__ == "__main__":
    main()
