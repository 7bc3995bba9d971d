"""Audit of a generated IAM policy against the shipped model: the engine, and the whole
`mlplane iam audit` command in each output format.

Usage: python bench/bench_audit.py [RUNS] [BINDINGS] [CLI_BINDINGS]. The policy mixes predefined
roles (basic ones included), users, groups, service accounts, public members and IAM
conditions, on the project and on resources.

Engine (BINDINGS, default 10,000; goal under 1 s): the median of RUNS for the audit alone and
for reading the gcloud JSON plus the audit, each with its ratio to the goal. The catalog is
loaded once beforehand (it is cached per process; its load time is printed).

Command (CLI_BINDINGS, default 100,000; 0 skips it): `mlplane iam audit` as a user runs it, in a
fresh process per run, output to /dev/null, for --format json, jsonl and table: median wall
time and the process's peak RSS, beside the anchor measured in the same way in the same run
(a process that only reads the policy files with json.load). Goals: json <= 10 s and <= 500 MB;
table <= 2x json. Ratios are printed; the machine's load moves the absolute times.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
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


# Runs one command in this fresh process and prints its wall time and peak RSS (KiB).
CHILD = """
import resource, sys, time
t = time.perf_counter()
if sys.argv[1] == "anchor":
    import json
    for path in sys.argv[2:]:
        with open(path) as f:
            json.load(f)
    code = 0
else:
    from mlplane.cli.main import main
    sys.stdout = open("/dev/null", "w")
    code = main(sys.argv[1:])
wall = time.perf_counter() - t
print(wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code, file=sys.stderr)
"""


def run_child(args: list[str]) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env
    )
    wall, rss, code = proc.stderr.strip().splitlines()[-1].split()
    if code not in ("0", "4"):
        raise SystemExit(f"mlplane iam audit failed: {proc.stderr[-2000:]}")
    return float(wall), int(rss)


def bench_command(runs: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "mlplane.toml").write_text(PROJECT)
        plan = synthesize(load_project(tmp / "mlplane.toml"))
        project, resource = generate(plan, n)
        (tmp / "policy.json").write_text(json.dumps(project))
        (tmp / "sa.json").write_text(json.dumps(resource))
        sa = plan.service_accounts[1].email
        base = ["-f", str(tmp / "mlplane.toml"), "iam", "audit", "--policy"]
        base += [
            str(tmp / "policy.json"),
            "--resource-policy",
            f"serviceAccount:{sa}={tmp}/sa.json",
        ]
        results: dict[str, tuple[float, float]] = {}
        for name, args in (
            ("anchor", ["anchor", str(tmp / "policy.json"), str(tmp / "sa.json")]),
            ("json", [*base, "--format", "json", "--fail-on", "never"]),
            ("jsonl", [*base, "--format", "jsonl", "--fail-on", "never"]),
            ("table", [*base, "--format", "table", "--fail-on", "never"]),
        ):
            samples = [run_child(args) for _ in range(runs)]
            wall = statistics.median(s[0] for s in samples)
            rss = max(s[1] for s in samples) / 1024
            results[name] = (wall, rss)
    anchor = results["anchor"][0]
    print(f"\n`mlplane iam audit` on {n} bindings, median of {runs} runs (fresh process each):")
    print(f"  anchor (json.load of the policy files): {anchor:.2f} s")
    for name in ("json", "jsonl", "table"):
        wall, rss = results[name]
        print(
            f"  --format {name:<5} {wall:6.2f} s ({wall / anchor:5.1f}x anchor), peak {rss:6.0f} MB"
        )
    json_s, json_mb = results["json"]
    print(
        f"  goals: json {json_s / 10:.2f}x the 10 s goal, {json_mb / 500:.2f}x the 500 MB goal; "
        f"table/json {results['table'][0] / json_s:.2f} (goal <= 2)"
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    cli_n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
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
    if cli_n:
        bench_command(max(1, min(runs, 3)), cli_n)


if __name__ == "__main__":
    main()
