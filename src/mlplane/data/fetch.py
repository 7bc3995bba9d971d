"""`python -m mlplane.data.fetch gs://BUCKET/PREFIX/ DEST -- CMD ARGS...`: download an artifact
prefix as the acting principal (on a VM: its service account, from the metadata endpoint), then
become CMD, where `{artifact}` in ARGS becomes DEST: a `python -m MODULE ...` runs in this very
process, as an exec of it would, without starting a second interpreter (and in a replica the
agent's launcher forked, with the model server already imported); any other CMD is exec'd.

A serving VM does this at boot: it fetches the model its template names, then runs the model
server. Every download is authorized for the caller, so a replica whose identity may not read
the bucket fails to start, with the denial in its log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlplane.errors import MlplaneError


def fetch(prefix: str, dest: Path) -> int:
    from mlplane.data.artifacts import ArtifactStore, parse_gs_uri

    store = ArtifactStore.open()
    root = prefix if prefix.endswith("/") else prefix + "/"
    base = parse_gs_uri(root, prefix=True).name
    listing = store.list(root, recursive=True)
    count = 0
    for obj in listing.objects:
        target = dest / obj.name[len(base) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(f"gs://{obj.bucket}/{obj.name}", target)
        count += 1
    if count == 0:
        raise MlplaneError(f"{root}: no objects to fetch")
    return count


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or len(args[: args.index("--")]) != 2 or not args[args.index("--") + 1 :]:
        print(__doc__, file=sys.stderr)
        return 2
    prefix, dest = args[0], Path(args[1])
    command = [a.replace("{artifact}", str(dest)) for a in args[args.index("--") + 1 :]]
    try:
        n = fetch(prefix, dest)
    except MlplaneError as exc:
        print(f"mlplane-fetch: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"mlplane-fetch: {n} objects from {prefix} into {dest}", flush=True)
    if command[0] in ("python", "python3"):  # the workload's interpreter: this one
        command[0] = sys.executable
    if command[0] == sys.executable and len(command) >= 3 and command[1] == "-m":
        from mlplane.zygote import run_as_main

        return run_as_main(command[2], command[3:])
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
