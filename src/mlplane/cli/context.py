"""What every command shares: where the project file is, how to print.

On every command's start-up path: no pathlib or dataclasses at import (docs/decisions/0005).
"""

from __future__ import annotations

from mlplane.project_path import PROJECT_FILE, find_project_file

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from mlplane.workflows.session import Session

__all__ = ["PROJECT_FILE", "Context", "add_dry_run", "emit_json", "find_project_file"]


class Context:
    """Per-invocation settings: the project file, and the service account to impersonate
    (`--impersonate-service-account`, granted or refused by IAM as on Google)."""

    def __init__(
        self, project_override: str | Path | None = None, impersonate: str | None = None
    ) -> None:
        self.project_override = None if project_override is None else str(project_override)
        self.impersonate = impersonate

    @property
    def project_file(self) -> str:
        """The project file's path as a string (cheap: no pathlib)."""
        return self.project_override or find_project_file()

    @property
    def project_path(self) -> Path:
        from pathlib import Path

        return Path(self.project_file)

    def session(self) -> Session:
        """The project's session; calls carry the signed-in (or impersonated) identity."""
        from mlplane.workflows.session import Session

        return Session.open(self.project_path)

    def impersonate_now(self) -> None:
        """`--impersonate-service-account`: get the account's token from IAM Credentials (or
        fail, as Google refuses it) and make it this process's credential, as gcloud's flag
        does: every command, the data SDK and the processes it starts then act as it."""
        if not self.impersonate:
            return
        import os
        import tempfile

        from mlplane.workflows import compose
        from mlplane.workflows.session import Session

        session = Session.open(self.project_path, impersonate=self.impersonate)
        token = compose.access_token(session.api)
        fd, path = tempfile.mkstemp(prefix="mlplane-impersonated-")  # 0600
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.environ["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = path
        import atexit

        atexit.register(os.unlink, path)


def emit_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def add_dry_run(parser: Any) -> None:
    """`--dry-run` on a mutating command (docs/decisions/1300-dry-run.md)."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact requests (method, URL, body) it would send, in order, and send "
        "nothing that changes anything (reads it needs are sent, as you)",
    )
