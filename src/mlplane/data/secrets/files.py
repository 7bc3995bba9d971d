"""Atomic file writes for the local store: a whole file appears under its final name, or
nothing does."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes, mode: int) -> str:
    """`data` in a new fsynced temporary file in `directory`; the caller links or renames it."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def link_new(directory: Path, final: Path, data: bytes, mode: int) -> bool:
    """Write `data` to `final` atomically if `final` does not exist; False if it does."""
    tmp = _write_temp(directory, data, mode)
    try:
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        _fsync_dir(directory)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def replace_whole(directory: Path, final: Path, data: bytes, mode: int) -> None:
    """Write `data` over `final` atomically (readers see the old or the new file whole)."""
    tmp = _write_temp(directory, data, mode)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_dir(directory)
