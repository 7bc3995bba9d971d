"""A reference to a Secret Manager secret version, `SECRET` or `SECRET:VERSION`, as training
specs name the secrets a job's environment takes (resolved when the job starts)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REF = re.compile(r"([A-Za-z0-9_-]{1,255})(?::(latest|[1-9][0-9]*))?")
# Environment variable names that usually hold a credential: their values belong in a secret.
_CREDENTIAL = re.compile(
    r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|PASS|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)($|_)",
    re.IGNORECASE,
)


def parse_ref(ref: str) -> tuple[str, int | str]:
    """`SECRET` or `SECRET:VERSION` -> (name, version); ValueError says what is wrong."""
    m = _REF.fullmatch(ref)
    if m is None:
        raise ValueError(
            f"'{ref}' is not a secret reference (SECRET or SECRET:VERSION, VERSION a number or "
            "'latest'; a secret's name has letters, digits, '-' and '_')"
        )
    version = m.group(2) or "latest"
    return m.group(1), int(version) if version.isdigit() else version


def looks_like_credential(env_name: str) -> bool:
    return _CREDENTIAL.search(env_name) is not None


def command_prefix(refs: Mapping[str, str]) -> list[str]:
    """The argv prefix that resolves `refs` before a command, in the job's own process
    (`python -m mlplane.data.secrets.env`; empty when there are none)."""
    if not refs:
        return []
    return ["python", "-m", "mlplane.data.secrets.env", *(f"{k}={v}" for k, v in refs.items())]
