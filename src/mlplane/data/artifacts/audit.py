"""The local artifact store's own audit log, as Cloud Audit Logs' data-access entries for Cloud
Storage: every object written or deleted, by whom, with which token (a build's, an instance's,
a signed-in user's). A build's record lists what its identity wrote from here, not from what the
build said it would write.

One JSON line per event in `.mlplane/buckets/.audit.jsonl` (0600, appended with O_APPEND).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

AUDIT = ".audit.jsonl"


def audit_path(root: Path) -> Path:
    return root / AUDIT


def record(root: Path, entry: dict[str, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = json.dumps({"time": time.time(), **entry}, sort_keys=True) + "\n"
    fd = os.open(audit_path(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def entries(root: Path) -> list[dict[str, Any]]:
    try:
        lines = audit_path(root).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def writes_by(project_file: Path, origin: str, detail: str) -> list[dict[str, Any]]:
    """Objects written by tokens of `origin` `detail` (e.g. build 2026...-ab12cd34)."""
    root = Path(project_file).resolve().parent / ".mlplane" / "buckets"
    return [
        e
        for e in entries(root)
        if e.get("method") == "storage.objects.create"
        and e.get("origin") == origin
        and e.get("detail") == detail
    ]
