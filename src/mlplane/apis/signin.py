"""Where a signed-in user's credentials live, as gcloud keeps its own: the user's config
directory (`$MLPLANE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/mlplane`, else `~/.config/mlplane`).

    credentials/<account>.json   {"type": "mlplane_user", "account", "refresh_token"}  (0600)
    active                       the active account's email
    signins.json                 {account: [sha256(refresh_token), ...]}  (0600): what this
                                 machine's sign-in issued; the local agent (the token authority)
                                 accepts a refresh token only if its hash is listed here

Locally, signing in is choosing a member of the project's team, not proving a password: an
emulation for catching least-privilege mistakes, not a security boundary between processes of
one OS user (docs/iam.md, "Identity").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import token_cache

CREDENTIAL_TYPE = "mlplane_user"


def config_dir() -> Path:
    return Path(token_cache.config_dir())


def credentials_dir() -> Path:
    return config_dir() / "credentials"


def credential_path(account: str) -> Path:
    return credentials_dir() / f"{account}.json"


def active_path() -> Path:
    return config_dir() / "active"


def registry_path() -> Path:
    return config_dir() / "signins.json"


def token_hash(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


@dataclass(frozen=True)
class UserCredential:
    account: str
    refresh_token: str

    def to_json(self) -> str:
        return json.dumps(
            {"type": CREDENTIAL_TYPE, "account": self.account, "refresh_token": self.refresh_token}
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> UserCredential:
        try:
            d = json.loads(text)
            if d.get("type") != CREDENTIAL_TYPE:
                raise ValueError(f"type is {d.get('type')!r}, not {CREDENTIAL_TYPE!r}")
            return cls(str(d["account"]), str(d["refresh_token"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: not an mlplane user credential ({exc})") from None


def active_account() -> str | None:
    try:
        return active_path().read_text().strip() or None
    except OSError:
        return None


def read_credential(account: str) -> UserCredential | None:
    path = credential_path(account)
    try:
        return UserCredential.from_json(path.read_text(), str(path))
    except OSError:
        return None


def signed_in_accounts() -> list[str]:
    try:
        names = sorted(p.name for p in credentials_dir().iterdir() if p.suffix == ".json")
    except OSError:
        return []
    return [n.removesuffix(".json") for n in names]


def issued_hashes(account: str) -> frozenset[str]:
    """Hashes of the refresh tokens this machine's sign-in issued to `account`."""
    try:
        data = json.loads(registry_path().read_text())
        return frozenset(str(h) for h in data.get(account, ()))
    except (OSError, ValueError, AttributeError, TypeError):
        return frozenset()
