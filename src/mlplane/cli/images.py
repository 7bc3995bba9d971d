"""`mlplane images ...`: the process images' definitions, their Debian base, what was pushed; and
the `build-images` trigger's steps (`mlplane ci step build-images`, run by its build)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mlplane.cli.context import Context, emit_json


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)
    p = subs.add_parser(
        "write",
        help="write the image definitions under images/ (Dockerfiles, locks from this environment)",
    )
    p.add_argument("--force", action="store_true", help="overwrite Dockerfiles the team edited")
    p.set_defaults(run=run_write)
    p = subs.add_parser("base", help="make the Debian base (debootstrap, needs root; cached)")
    p.set_defaults(run=run_base)
    p = subs.add_parser("list", help="the images the last build-images build pushed, by digest")
    p.add_argument("--format", dest="fmt", choices=("table", "json"), default="table")
    p.set_defaults(run=run_list)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_write(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.images.definitions import write_definitions

    project_dir = ctx.project_path.resolve().parent
    written = write_definitions(project_dir, force=args.force, progress=_progress)
    for w in written:
        print(f"{w.status:9}  {w.path.relative_to(project_dir)}")
    kept = [w for w in written if w.status == "kept"]
    if kept:
        print(f"{len(kept)} Dockerfiles edited by the team were kept (--force overwrites them)")
    print("commit images/: the build-images trigger builds what is committed on main")
    return 0


def run_base(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.images.rootfs import base_rootfs

    base = base_rootfs(progress=_progress)
    size = base.tar.stat().st_size
    print(f"{base.tar}  {size // (1024 * 1024)} MiB  ({'made now' if base.built else 'cached'})")
    print(f"{base.packages}  {len(base.packages.read_text().splitlines())} Debian packages")
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlplane.workflows.ci import list_builds

    builds = [b for b in list_builds(ctx.session()) if b.trigger == "build-images" and b.images]
    if not builds:
        print(
            "no build-images build has pushed images yet (mlplane ci run build-images "
            "--branch main)"
        )
        return 0
    last = builds[-1]
    if args.fmt == "json":
        emit_json({"build": last.id, "images": [asdict(i) for i in last.images]})
        return 0
    print(f"build {last.id} ({last.source or 'no source'}):")
    for image in last.images:
        print(f"  {image.name.rsplit(':', 1)[0]}@{image.digest}")
    return 0


# -- the build-images trigger's steps (mlplane ci step build-images) ----------------------------


def add_step_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--prepare", action="store_true", help="stage the build contexts")
    s.add_argument("--images", default="", help="the images to stage (comma-separated)")
    s.add_argument("--repository", default="", help="HOST/PROJECT/REPOSITORY pushed to")
    s.add_argument("--tag", default="", help="this build's tag of each image")


def run_step(ctx: Context, args: argparse.Namespace) -> int:
    from mlplane.errors import ConfigError
    from mlplane.workflows import build_images

    session = ctx.session()
    workspace = Path.cwd()
    if not args.repository:
        raise ConfigError("argument", "--repository", "the build's config gives it")
    _progress(f"build-images step as {session.principal}")
    if args.prepare:
        images = tuple(i for i in args.images.split(",") if i)
        build_images.prepare(session, workspace, args.repository, images, _progress)
        return 0
    if not args.tag:
        raise ConfigError("argument", "--tag", "the build's config gives it ($BUILD_ID)")
    result = build_images.deploy(session, workspace, args.repository, args.tag, _progress)
    changed = [r.service for r in result.rollouts if r.changed]
    reset = [r.instance for r in result.resets if r.reset]
    if not result.skipped:
        _progress(
            f"pushed {len(result.pushed)} images; new revisions: {', '.join(changed) or 'none'}"
            f"; instances reset: {', '.join(reset) or 'none'}"
        )
    return 0
