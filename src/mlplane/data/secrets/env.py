"""Secrets in a job's environment, by reference: `ENV = "SECRET[:VERSION]"` is resolved when
the job starts, as the identity it runs as, and the value exists only in the job's environment
(never in a spec record, an instance's metadata or the agent's state). The way Cloud Run's
`valueSource.secretKeyRef` and Cloud Build's `availableSecrets` work.

`python -m mlplane.data.secrets.env ENV=SECRET[:VERSION]... -- COMMAND...` resolves the
references with the data SDK (credentials found as Google's libraries find them: on a VM, its
service account) and then replaces itself with COMMAND.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from mlplane.data.secrets.service import Secrets
from mlplane.errors import MlplaneError
from mlplane.model.secret_refs import parse_ref

_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def resolve(refs: Mapping[str, str], secrets: Secrets) -> dict[str, str]:
    """ENV -> the referenced version's value as text, read as `secrets`' principal. Raises
    MlplaneError naming the variable and the secret (a denial keeps Google's wording)."""
    out: dict[str, str] = {}
    for env, ref in refs.items():
        name, version = parse_ref(ref)
        try:
            out[env] = secrets.get(name, version).text()
        except ValueError as exc:
            raise MlplaneError(f"{env}: secret '{name}': {exc}") from None
        except MlplaneError as exc:  # the same error (its exit code), naming the variable
            exc.args = (f"{env}: secret '{name}': {exc}", *exc.args[1:])
            raise
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    refs: dict[str, str] = {}
    while args and args[0] != "--":
        env, sep, ref = args.pop(0).partition("=")
        if not sep or not _ENV.fullmatch(env):
            print(
                f"mlplane-secrets: '{env}{sep}{ref}' is not ENV=SECRET[:VERSION]", file=sys.stderr
            )
            return 2
        refs[env] = ref
    command = args[1:]
    if not command:
        print(
            "usage: python -m mlplane.data.secrets.env ENV=SECRET[:VERSION]... -- COMMAND...",
            file=sys.stderr,
        )
        return 2
    from mlplane.data.secrets.service import open_secrets

    try:
        values = resolve(refs, open_secrets())
    except (MlplaneError, ValueError) as exc:
        print(f"mlplane-secrets: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, MlplaneError) else 1
    os.execvpe(command[0], command, {**os.environ, **values})


if __name__ == "__main__":
    sys.exit(main())
