"""`mlplane artifacts ls|cp|cat|stat|rm`: the artifact buckets, as the acting principal.

Thin: parse, then call one ArtifactStore method. It acts as whoever the caller's credentials
belong to (the signed-in user; in a workload, its instance's service account), as the data SDK.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlplane.cli.context import Context, add_dry_run, emit_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mlplane.apis.request import DryRunLog
    from mlplane.data.artifacts import ArtifactStore, ObjectMeta


def configure(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--backend",
        choices=("local", "gcs"),
        help="local buckets under .mlplane/buckets, or Cloud Storage "
        "(default: $MLPLANE_ARTIFACTS_BACKEND, else local)",
    )
    subs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", prog=parser.prog)

    p = subs.add_parser("ls", parents=[common], help="list objects and prefixes under a URI")
    p.add_argument("uri", metavar="gs://BUCKET[/PREFIX]")
    p.add_argument("-r", "--recursive", action="store_true", help="every object below")
    p.add_argument("-l", "--long", action="store_true", help="size, generation, updated")
    p.add_argument(
        "--format", dest="fmt", choices=("text", "json"), default="text", help="json: metadata"
    )
    p.set_defaults(run=run_ls)

    p = subs.add_parser("cp", parents=[common], help="copy local <-> gs:// (or gs:// -> gs://)")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument(
        "--if-generation-match",
        type=int,
        metavar="N",
        help="write only if the object is at generation N (0: only if it does not exist)",
    )
    add_dry_run(p)
    p.set_defaults(run=run_cp)

    p = subs.add_parser("cat", parents=[common], help="write an object's bytes to stdout")
    p.add_argument("uri", metavar="gs://BUCKET/OBJECT")
    p.set_defaults(run=run_cat)

    p = subs.add_parser("stat", parents=[common], help="an object's metadata (JSON)")
    p.add_argument("uri", metavar="gs://BUCKET/OBJECT")
    p.set_defaults(run=run_stat)

    p = subs.add_parser("rm", parents=[common], help="delete an object")
    p.add_argument("uri", metavar="gs://BUCKET/OBJECT")
    p.add_argument("--if-generation-match", type=int, metavar="N")
    add_dry_run(p)
    p.set_defaults(run=run_rm)


def _store(ctx: Context, args: argparse.Namespace) -> ArtifactStore:
    from mlplane.data.artifacts import ArtifactStore

    return ArtifactStore.open(ctx.project_path, backend=args.backend)


def meta_json(meta: ObjectMeta) -> dict[str, object]:
    return {
        "uri": meta.uri,
        "bucket": meta.bucket,
        "name": meta.name,
        "size": meta.size,
        "md5Hash": meta.md5_hash,
        "crc32c": meta.crc32c,
        "generation": str(meta.generation),
        "updated": meta.updated.isoformat(),
        "contentType": meta.content_type,
    }


def run_ls(ctx: Context, args: argparse.Namespace) -> int:
    listing = _store(ctx, args).list(args.uri, recursive=args.recursive)
    bucket = args.uri[len("gs://") :].partition("/")[0]
    if not listing.objects and not listing.prefixes and args.uri.rstrip("/") != f"gs://{bucket}":
        from mlplane.data.artifacts import ObjectNotFound

        raise ObjectNotFound(args.uri, "matched no objects")
    if args.fmt == "json":
        emit_json(
            {
                "objects": [meta_json(m) for m in listing.objects],
                "prefixes": [f"gs://{bucket}/{p}" for p in listing.prefixes],
            }
        )
        return 0
    for prefix in listing.prefixes:
        print(f"{'':>32}gs://{bucket}/{prefix}" if args.long else f"gs://{bucket}/{prefix}")
    for m in listing.objects:
        if args.long:
            stamp = m.updated.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(f"{m.size:>10}  {stamp}  {m.uri}#{m.generation}")
        else:
            print(m.uri)
    return 0


def _dry_run(store: ArtifactStore) -> DryRunLog:
    from mlplane.apis.request import DryRunLog

    return DryRunLog(str(store.caller.principal))


def run_cp(ctx: Context, args: argparse.Namespace) -> int:
    if args.dry_run:
        store = _store(ctx, args)
        log = _dry_run(store)
        store.rehearse_copy(args.src, args.dst, log, if_generation_match=args.if_generation_match)
        print(log.render())
        return 0
    meta, where = _store(ctx, args).copy(
        args.src, args.dst, if_generation_match=args.if_generation_match
    )
    print(f"{args.src} -> {where} ({meta.size} bytes, generation {meta.generation})")
    return 0


def run_cat(ctx: Context, args: argparse.Namespace) -> int:
    import sys

    _store(ctx, args).read_to(args.uri, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


def run_stat(ctx: Context, args: argparse.Namespace) -> int:
    emit_json(meta_json(_store(ctx, args).stat(args.uri)))
    return 0


def run_rm(ctx: Context, args: argparse.Namespace) -> int:
    if args.dry_run:
        store = _store(ctx, args)
        log = _dry_run(store)
        store.rehearse_delete(args.uri, log, if_generation_match=args.if_generation_match)
        print(log.render())
        return 0
    _store(ctx, args).delete(args.uri, if_generation_match=args.if_generation_match)
    print(f"removed {args.uri}")
    return 0
