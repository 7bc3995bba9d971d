"""Synthesis of the shipped model: load + validate against the catalog + synthesize + compile.

Usage: python bench/bench_synthesis.py [RUNS]. The anchor is the irreducible part: reading and
parsing the same inputs (the shipped model TOML, the project TOML and the catalog files) with
nothing built from them. Prints medians and the ratio.
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import tempfile
import time
import tomllib
from importlib import resources
from pathlib import Path

from mlplane.iam.catalog import Catalog, PredefinedRole
from mlplane.iam.compile import compile_policy
from mlplane.iam.loading import load_shipped_model, merge_project, parse_model, read_toml
from mlplane.iam.synthesis import synthesize
from mlplane.model.project import ProjectFile

PROJECT = """[project]
id = "acme-ml"
[team]
principals = ["user:alice@acme.com", "group:ml@acme.com"]
"""


def read_inputs(project: Path) -> tuple[bytes, bytes, bytes, bytes]:
    data = resources.files("mlplane.iam.catalog_data")
    shipped = resources.files("mlplane.model").joinpath("operational_model.toml").read_bytes()
    tomllib.loads(shipped.decode())
    tomllib.loads(project.read_text())
    perms = gzip.decompress(data.joinpath("permissions.txt.gz").read_bytes())
    roles = gzip.decompress(data.joinpath("roles.json.gz").read_bytes())
    json.loads(roles)
    return shipped, project.read_bytes(), perms, roles


def full(project: Path) -> int:
    data = resources.files("mlplane.iam.catalog_data")
    perms = frozenset(
        gzip.decompress(data.joinpath("permissions.txt.gz").read_bytes()).decode().split()
    )
    raw = json.loads(gzip.decompress(data.joinpath("roles.json.gz").read_bytes()))
    roles = {
        n: PredefinedRole(
            n, b.get("title", ""), b.get("stage", ""), frozenset(b["includedPermissions"])
        )
        for n, b in raw.items()
    }
    catalog = Catalog(perms, roles)
    loaded = merge_project(
        project,
        parse_model(ProjectFile, read_toml(project), str(project)),
        load_shipped_model(),
        catalog,
    )
    plan = synthesize(loaded)
    compile_policy(loaded, plan)
    return len(plan.bindings)


def median(fn: object, runs: int, *args: object) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    with tempfile.TemporaryDirectory() as d:
        project = Path(d) / "mlplane.toml"
        project.write_text(PROJECT)
        anchor = median(read_inputs, runs, project)
        ours = median(full, runs, project)
        synth_only = median(
            lambda: synthesize(
                merge_project(
                    project,
                    parse_model(ProjectFile, read_toml(project), "p"),
                    load_shipped_model(),
                    _CAT,
                )
            ),
            runs,
        )
    print(f"median of {runs} runs")
    print(f"  read + parse inputs (anchor)                {anchor * 1e3:7.1f} ms")
    ratio = ours / anchor
    print(
        f"  load, validate, synthesize, compile (cold)  {ours * 1e3:7.1f} ms  {ratio:5.2f}x anchor"
    )
    print(f"  merge + validate + synthesize (catalog warm) {synth_only * 1e3:6.1f} ms")


_CAT: Catalog
if __name__ == "__main__":
    from mlplane.iam.catalog import load_catalog

    _CAT = load_catalog()
    main()
