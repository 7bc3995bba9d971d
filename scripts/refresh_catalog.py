"""Refresh mlplane's shipped IAM catalog from a directory holding roles.json and permissions.txt.

Usage: python scripts/refresh_catalog.py DIR

DIR is built from the iam-dataset repository as its SOURCE.md describes (roles.json: predefined
role name -> {title, stage, description, includedPermissions}; permissions.txt: their union). The
script checks that permissions.txt is exactly that union, writes the gzip files into the package,
and prints the sha256 of each input so SOURCE.md can be updated with the new commit.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "src" / "mlplane" / "iam" / "catalog_data"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(argv[0])
    roles_raw = (src / "roles.json").read_bytes()
    perms_raw = (src / "permissions.txt").read_bytes()
    roles = json.loads(roles_raw)
    union = {p for body in roles.values() for p in body.get("includedPermissions", [])}
    listed = set(perms_raw.decode().split())
    if union != listed:
        print(
            f"permissions.txt is not the union of roles.json: {len(listed ^ union)} differ",
            file=sys.stderr,
        )
        return 1
    for name, raw in (("roles.json", roles_raw), ("permissions.txt", perms_raw)):
        (TARGET / f"{name}.gz").write_bytes(gzip.compress(raw, 9, mtime=0))
        print(f"{name}: sha256 {hashlib.sha256(raw).hexdigest()}")
    print(f"{len(roles)} roles, {len(union)} permissions written to {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
