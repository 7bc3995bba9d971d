"""The local backend: an encrypted store in `.mlplane/secrets/` beside the project file.

Layout: `master.key` (32 random bytes, base64, mode 0600, made on first write) and
`<name>/<version>.json` per version, each AES-256-GCM sealed with the name and version number as
associated data, so a file moved to another name or version does not decrypt
(docs/decisions/0600-secrets.md). A version file is written whole to a temporary file and
hard-linked to its final name, which fails if another writer took the number first: writes are
atomic and concurrent writers never overwrite each other's versions.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlplane.data.secrets.files import link_new, replace_whole
from mlplane.data.secrets.value import (
    NAME_PATTERN,
    SecretInfo,
    SecretNotFound,
    SecretValue,
    SecretVersion,
    check_name,
)
from mlplane.errors import ConfigError, PermanentError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "master.key"
KEY_ENV = "MLPLANE_SECRETS_KEY_FILE"
_VERSION_FILE = re.compile(r"([1-9][0-9]*)\.json")
_NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class LocalSecretStore:
    """Secrets of one project on this machine. Not an OS security boundary: whoever can read
    the key file can read every secret; the encryption keeps values out of backups, copies and
    accidental commits of the store without its key, and out of `grep`."""

    def __init__(self, root: Path, key_file: Path | None = None) -> None:
        self.root = Path(root)
        self.key_file = Path(key_file) if key_file else self.root / KEY_FILE

    @classmethod
    def for_project(cls, project_file: Path, project: str = "") -> LocalSecretStore:
        """The store beside `project_file`; the key from $MLPLANE_SECRETS_KEY_FILE if set."""
        key = os.environ.get(KEY_ENV)
        return cls(Path(project_file).parent / ".mlplane" / "secrets", Path(key) if key else None)

    # ------------------------------------------------------------------ the key

    def _read_key(self) -> bytes:
        mode = stat.S_IMODE(os.stat(self.key_file).st_mode)
        if mode & 0o077:
            raise ConfigError(
                str(self.key_file),
                "",
                f"the secrets key file is accessible to group or others (mode {mode:04o}); "
                f"run `chmod 600 {self.key_file}`",
            )
        try:
            key = base64.b64decode(self.key_file.read_bytes().strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ConfigError(
                str(self.key_file), "", "not a secrets key (32 bytes, base64-encoded)"
            )
        return key

    def _key(self, create: bool) -> bytes:
        if not self.key_file.exists():
            if not create or self._has_versions():
                raise PermanentError(
                    f"the secrets key file {self.key_file} is missing: the store's versions "
                    "cannot be decrypted (restore the key, or remove the store to start over)"
                )
            self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = (_b64(secrets.token_bytes(32)) + "\n").encode()
            link_new(self.key_file.parent, self.key_file, data, 0o600)  # first writer wins
        return self._read_key()

    def _has_versions(self) -> bool:
        """Whether any version was sealed already (then a new key would orphan it)."""
        return self.root.is_dir() and any(
            _VERSION_FILE.fullmatch(p.name) for p in self.root.glob("*/*.json")
        )

    def _cipher(self, create: bool) -> AESGCM:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._key(create))

    # ------------------------------------------------------------------ versions on disk

    def _dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def _numbers(self, name: str) -> list[int]:
        d = self._dir(name)
        if not d.is_dir():
            raise SecretNotFound(name)
        return sorted(
            int(m.group(1)) for p in d.iterdir() if (m := _VERSION_FILE.fullmatch(p.name))
        )

    def _load(self, name: str, number: int) -> dict[str, object]:
        path = self._dir(name) / f"{number}.json"
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise SecretNotFound(name, number) from None
        except (OSError, ValueError) as exc:
            raise PermanentError(
                f"{path}: unreadable version file ({type(exc).__name__})"
            ) from None
        if not isinstance(record, dict) or record.get("version") != number:
            raise PermanentError(f"{path}: not a version file of this store")
        return record

    def _meta(self, name: str, record: dict[str, object]) -> SecretVersion:
        return SecretVersion(
            name=name,
            version=int(str(record["version"])),
            state=str(record.get("state", "enabled")),
            created=str(record.get("created", "")),
        )

    # ------------------------------------------------------------------ SecretBackend

    def list_secrets(self) -> tuple[SecretInfo, ...]:
        if not self.root.is_dir():
            return ()
        out = []
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or not NAME_PATTERN.fullmatch(d.name):
                continue  # not a secret of ours
            versions = tuple(
                self._meta(d.name, self._load(d.name, n)) for n in self._numbers(d.name)
            )
            out.append(SecretInfo(d.name, versions))
        return tuple(out)

    def access(self, name: str, version: int | str) -> tuple[SecretVersion, SecretValue]:
        numbers = self._numbers(name)
        if version == "latest":
            enabled = [
                n for n in numbers if self._meta(name, self._load(name, n)).state == "enabled"
            ]
            if not enabled:
                raise SecretNotFound(name, "latest")
            number = enabled[-1]
        else:
            number = int(version)
        record = self._load(name, number)
        meta = self._meta(name, record)
        if meta.state != "enabled":
            raise PermanentError(f"version {number} of secret '{name}' is {meta.state}")
        from cryptography.exceptions import InvalidTag

        cipher = self._cipher(create=False)
        try:
            nonce = base64.b64decode(str(record["nonce"]), validate=True)
            sealed = base64.b64decode(str(record["ciphertext"]), validate=True)
            plain = cipher.decrypt(nonce, sealed, _aad(name, number))
        except (KeyError, binascii.Error, ValueError, InvalidTag):
            raise PermanentError(
                f"version {number} of secret '{name}' does not decrypt with the key "
                f"{self.key_file} (a different key, or a changed file)"
            ) from None
        return meta, SecretValue(plain)

    def add_version(self, name: str, value: SecretValue) -> SecretVersion:
        d = self._dir(name)
        numbers = self._numbers(name)  # raises SecretNotFound: the facade authorizes create
        cipher = self._cipher(create=True)
        number = (numbers[-1] if numbers else 0) + 1
        while True:
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            nonce = secrets.token_bytes(_NONCE_BYTES)
            sealed = cipher.encrypt(nonce, value.reveal(), _aad(name, number))
            record = {
                "version": number,
                "state": "enabled",
                "created": created,
                "cipher": "AES-256-GCM",
                "nonce": _b64(nonce),
                "ciphertext": _b64(sealed),
            }
            data = json.dumps(record, indent=1).encode()
            try:
                written = link_new(d, d / f"{number}.json", data, 0o600)
            except OSError as exc:
                raise _write_error(d, exc) from None
            if written:
                return SecretVersion(name, number, "enabled", created)
            number += 1  # another writer took this number

    def set_state(self, name: str, number: int, state: str) -> SecretVersion:
        record = self._load(name, number)
        if record.get("state") == "destroyed" and state != "destroyed":
            raise PermanentError(f"version {number} of secret '{name}' is destroyed")
        record["state"] = state
        if state == "destroyed":  # the ciphertext goes; the metadata stays, as on GCP
            record.pop("nonce", None)
            record.pop("ciphertext", None)
        d = self._dir(name)
        try:
            replace_whole(d, d / f"{number}.json", json.dumps(record, indent=1).encode(), 0o600)
        except OSError as exc:
            raise _write_error(d, exc) from None
        return self._meta(name, record)

    def exists(self, name: str) -> bool:
        return self._dir(name).is_dir()

    def create(self, name: str) -> None:
        d = self._dir(name)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            d.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise _write_error(d, exc) from None


def _write_error(path: Path, exc: OSError) -> PermanentError:
    return PermanentError(f"{path}: cannot write the secrets store ({exc.strerror or exc})")


def _aad(name: str, number: int) -> bytes:
    return f"mlplane-secret/{name}/{number}".encode()
