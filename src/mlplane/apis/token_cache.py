"""Signed-in users' access tokens, kept until they expire, as gcloud keeps `access_tokens.db`.

`$CONFIG/access_tokens.json` (0600): {key: {"token", "expiresAt", "stamp"}}, where the key is
the token endpoint and the credential file (each local agent is a token authority of its own)
and the stamp is the credential file's (mtime_ns, size, inode): signing in again or signing out
makes the entry useless. A rejected token is forgotten (`forget`).

Stdlib only and no dataclasses or pathlib: `fast_token` is on the start-up path of commands
that make one call to the agent (`mlplane status`, decision 0005). Anything it cannot answer
(no entry, an expired one, a metadata server) is for `apis.credentials` to do the slow way.
"""

from __future__ import annotations

import os
import time

from mlplane import jsonread

TYPE_CHECKING = False  # as typing's, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

FILE = "access_tokens.json"
EARLY = 60.0  # as apis.credentials: a token this close to expiry is not handed out


def config_dir(env: Mapping[str, str] | None = None) -> str:
    """The user's mlplane config directory (see apis.signin)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    explicit = environ.get("MLPLANE_CONFIG_DIR")
    if explicit:
        return explicit
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mlplane")


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def _read(directory: str) -> dict[str, dict[str, object]]:
    try:
        with open(os.path.join(directory, FILE)) as f:
            data = jsonread.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(directory: str, data: dict[str, dict[str, object]]) -> None:
    """Atomically, owner-only; a cache, so a failure to write is not an error."""
    import json

    path = os.path.join(directory, FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        from contextlib import suppress

        with suppress(OSError):
            os.unlink(tmp)


def _expiry(entry: object) -> float:
    expires = entry.get("expiresAt") if isinstance(entry, dict) else None
    return float(expires) if isinstance(expires, int | float) else 0.0


def _key(token_uri: str, credential_file: str) -> str:
    return f"{token_uri} {os.path.abspath(credential_file)}"


def lookup(
    token_uri: str, credential_file: str, env: Mapping[str, str] | None = None
) -> str | None:
    """A cached token of the credential in `credential_file` from `token_uri`, if still good."""
    entry = _read(config_dir(env)).get(_key(token_uri, credential_file))
    if not isinstance(entry, dict):
        return None
    token = entry.get("token")
    if not isinstance(token, str) or _expiry(entry) - time.time() <= EARLY:
        return None
    return token if entry.get("stamp") == _stamp(credential_file) else None


def remember(token_uri: str, credential_file: str, token: str, expires_at: float) -> None:
    directory = config_dir()
    stamp = _stamp(credential_file)
    if stamp is None or not os.path.isdir(directory):
        return
    now = time.time()
    data = {k: v for k, v in _read(directory).items() if _expiry(v) > now}
    data[_key(token_uri, credential_file)] = {
        "token": token,
        "expiresAt": expires_at,
        "stamp": stamp,
    }
    _write(directory, data)


def forget(token_uri: str, credential_file: str) -> None:
    directory = config_dir()
    data = _read(directory)
    if data.pop(_key(token_uri, credential_file), None) is not None:
        _write(directory, data)


def fast_token(token_uri: str, env: Mapping[str, str] | None = None) -> str | None:
    """The caller's access token without a request, where one is at hand: a token file
    (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE), else a cached token of the user credential that
    `apis.credentials.default_credentials` would use. None: ask `default_credentials`."""
    env = os.environ if env is None else env
    token_file = env.get("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
    if token_file:
        try:
            with open(token_file) as f:
                return f.read().strip() or None
        except OSError:
            return None
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        return lookup(token_uri, key_file, env)
    if env.get("GCE_METADATA_HOST"):
        return None
    directory = config_dir(env)
    try:
        with open(os.path.join(directory, "active")) as f:
            account = f.read().strip()
    except OSError:
        return None
    if not account:
        return None
    return lookup(token_uri, os.path.join(directory, "credentials", f"{account}.json"), env)
