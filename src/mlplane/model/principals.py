"""Who is acting: users, groups and service accounts, spelled as IAM members are."""

from __future__ import annotations

import re

from mlplane.model.value import Value

_KINDS: tuple[str, ...] = ("user", "group", "serviceAccount", "domain")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class Principal(Value):
    """An IAM member: `user:alice@example.com`, `serviceAccount:sa@p.iam.gserviceaccount.com`.
    `kind` is user, group, serviceAccount, domain, allUsers or allAuthenticatedUsers."""

    __slots__ = ("kind", "email")
    kind: str
    email: str

    def __init__(self, kind: str, email: str) -> None:
        self._set(kind=kind, email=email)

    @classmethod
    def parse(cls, member: str) -> Principal:
        """Parse an IAM member string; raises ValueError with the reason."""
        if member in ("allUsers", "allAuthenticatedUsers"):
            return cls(member, "")
        kind, sep, rest = member.partition(":")
        if not sep:
            raise ValueError(
                f"'{member}' is not an IAM member: write 'user:EMAIL', 'group:EMAIL' "
                "or 'serviceAccount:EMAIL'"
            )
        if kind.startswith("deleted"):
            raise ValueError(f"'{member}' names a deleted principal")
        if kind not in _KINDS:
            raise ValueError(
                f"'{member}': unknown member kind '{kind}' (one of {', '.join(_KINDS)})"
            )
        if kind == "domain":
            if not rest or "@" in rest:
                raise ValueError(f"'{member}': a domain member names a domain, not an email")
        elif not _EMAIL.fullmatch(rest):
            raise ValueError(f"'{member}': '{rest}' is not an email address")
        return cls(kind, rest.lower())

    @property
    def member(self) -> str:
        return self.kind if not self.email else f"{self.kind}:{self.email}"

    @property
    def is_service_account(self) -> bool:
        return self.kind == "serviceAccount"

    @property
    def is_public(self) -> bool:
        return self.kind in ("allUsers", "allAuthenticatedUsers")

    def __str__(self) -> str:
        return self.member
