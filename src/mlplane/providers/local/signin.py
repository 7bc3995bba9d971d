"""Signing in on this machine (`mlplane auth login`): a refresh token for one team member, kept
0600 in the user's config directory as gcloud keeps its own, and its hash in the machine's
sign-in registry, where the local agent (the token authority) checks it at every exchange.

Locally, signing in is choosing a member of the project's team, not proving a password (there
is no identity provider on one machine): see docs/iam.md, "Identity".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlplane.apis import signin
from mlplane.apis.signin import UserCredential


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _registry() -> Iterator[dict[str, list[str]]]:
    """The sign-in registry, locked for a read-modify-write."""
    path = signin.registry_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = path.with_name(".signins.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        yield data
        _write(path, json.dumps(data, indent=1, sort_keys=True))
    finally:
        os.close(fd)


def login(account: str, *, activate: bool = True) -> UserCredential:
    """Sign `account` in (a new refresh token replaces the account's older one) and, unless
    told otherwise, make it the active account."""
    credential = UserCredential(account, "1//mlplane-" + secrets.token_urlsafe(40))
    with _registry() as data:
        hashes = set(data.get(account, ()))
        old = signin.read_credential(account)
        if old is not None:
            hashes.discard(signin.token_hash(old.refresh_token))
        hashes.add(signin.token_hash(credential.refresh_token))
        data[account] = sorted(hashes)
    _write(signin.credential_path(account), credential.to_json())
    if activate:
        make_active(account)
    return credential


def make_active(account: str) -> None:
    if signin.read_credential(account) is None:
        raise ValueError(f"{account} is not signed in on this machine (`mlplane auth login`)")
    _write(signin.active_path(), account + "\n")


def revoke(account: str) -> bool:
    """Forget `account`'s credential and un-register its refresh tokens; True if it was known."""
    known = signin.read_credential(account) is not None
    with _registry() as data:
        known = data.pop(account, None) is not None or known
    signin.credential_path(account).unlink(missing_ok=True)
    if signin.active_account() == account:
        signin.active_path().unlink(missing_ok=True)
    return known
