"""The agent as token authority: every access token it accepts, and whose it is.

A token comes only from where Google would give one:
- sign-in: a user's refresh token (issued by `mlplane auth login`, listed by hash in the
  machine's sign-in registry) exchanged at `/oauth2/token`;
- an instance's metadata server, for the instance's service account, to the instance's own
  workload (revoked when the instance stops);
- a build, for its trigger's service account, for as long as the build runs;
- `iamcredentials.generateAccessToken`, when IAM allows the caller `getAccessToken` on the
  account.

Tokens are random strings; the authority keeps only their sha256. Sign-in and impersonation
tokens are written (hashed, 0600) to the agent's state directory so that they outlive an agent
restart; instance and build tokens die with what they belong to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane.model.principals import Principal

log = logging.getLogger(__name__)
TOKEN_TTL = 3600.0
REFRESH_BEFORE = 300.0
_PERSISTED = ("signin", "impersonation")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    """What the authority knows of an issued token (never its value)."""

    principal: Principal
    origin: str  # signin | instance | build | impersonation
    detail: str  # the instance name, build id, or who impersonated
    expires_at: float

    @property
    def kind(self) -> str:
        return self.origin

    def describe(self) -> str:
        return f"{self.origin} {self.detail}".strip()


@dataclass(frozen=True)
class Issued:
    value: str
    token: Token


class TokenAuthority:
    def __init__(self, store: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._by_hash: dict[str, Token] = {}
        self._current: dict[tuple[str, str], Issued] = {}  # (origin, detail) -> latest
        self._load()

    # -- issuing -------------------------------------------------------------------------------

    def issue(
        self, principal: Principal, origin: str, detail: str = "", ttl: float = TOKEN_TTL
    ) -> Issued:
        value = "ya29.mlplane-" + secrets.token_urlsafe(32)
        token = Token(principal, origin, detail, self.clock() + ttl)
        with self._lock:
            self._by_hash[_hash(value)] = token
            self._current[(origin, detail)] = Issued(value, token)
            if origin in _PERSISTED:
                self._save()
        return Issued(value, token)

    def current(self, principal: Principal, origin: str, detail: str) -> Issued:
        """The live token of an instance or build (a new one shortly before it expires)."""
        with self._lock:
            got = self._current.get((origin, detail))
        if got is None or got.token.expires_at - self.clock() < REFRESH_BEFORE:
            got = self.issue(principal, origin, detail)
        return got

    def revoke(self, origin: str, detail: str) -> int:
        """Revoke every token of an instance or build; how many were revoked."""
        with self._lock:
            self._current.pop((origin, detail), None)
            gone = [
                h for h, t in self._by_hash.items() if t.origin == origin and t.detail == detail
            ]
            for h in gone:
                del self._by_hash[h]
            if origin in _PERSISTED and gone:
                self._save()
        return len(gone)

    # -- checking ------------------------------------------------------------------------------

    def lookup(self, value: str) -> Token | None:
        token = self._by_hash.get(_hash(value))
        if token is None or token.expires_at <= self.clock():
            return None
        return token

    # -- persistence ---------------------------------------------------------------------------

    def _load(self) -> None:
        if self.store is None:
            return
        try:
            rows = json.loads(self.store.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # Only hashes of access tokens are lost: each client exchanges its credential again
            # on the 401 it gets (as Google's clients refresh). The damaged file is kept aside.
            aside = self.store.with_name(f"{self.store.name}.damaged-{int(time.time())}")
            with contextlib.suppress(OSError):
                os.replace(self.store, aside)
            log.warning("%s is unreadable (%s): moved to %s; clients sign in again", self.store,
                        exc, aside)  # fmt: skip
            return
        now = self.clock()
        for h, row in rows.items() if isinstance(rows, dict) else ():
            try:
                token = Token(
                    Principal.parse(row["principal"]),
                    str(row["origin"]),
                    str(row.get("detail", "")),
                    float(row["expires_at"]),
                )
            except (KeyError, ValueError, TypeError):
                continue
            if token.expires_at > now:
                self._by_hash[str(h)] = token

    def _save(self) -> None:
        if self.store is None:
            return
        now = self.clock()
        rows = {
            h: {
                "principal": str(t.principal),
                "origin": t.origin,
                "detail": t.detail,
                "expires_at": t.expires_at,
            }
            for h, t in self._by_hash.items()
            if t.origin in _PERSISTED and t.expires_at > now
        }
        fd, tmp = tempfile.mkstemp(dir=self.store.parent, prefix=".tokens.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(rows, f)
            os.replace(tmp, self.store)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
