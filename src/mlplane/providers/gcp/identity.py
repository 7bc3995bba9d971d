"""Who the client acts as: told by the credentials when they know (a signed-in user, a metadata
server's account), else asked of the token endpoint's `tokeninfo` (as Google's is asked)."""

from __future__ import annotations

from mlplane.apis.credentials import CredentialError, MetadataCredentials, UserCredentials
from mlplane.apis.credentials import tokeninfo as token_info
from mlplane.errors import PermanentError
from mlplane.model.principals import Principal

from .client import GoogleApis, Unauthorized


class UnknownIdentity(PermanentError):
    exit_code = 3


def principal_of(apis: GoogleApis) -> Principal:
    creds = apis.credentials
    if isinstance(creds, UserCredentials):
        return Principal("user", creds.credential.account)
    if isinstance(creds, MetadataCredentials):
        creds.token()  # learns the email
        return Principal("serviceAccount", creds.email)
    info = tokeninfo(apis)
    email = info.get("email")
    if not email:
        raise UnknownIdentity(
            f"the token of {creds.describe()} does not say whose it is (no email in tokeninfo)"
        )
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    return Principal(kind, email)


def tokeninfo(apis: GoogleApis) -> dict[str, str]:
    """What the token endpoint says of the client's current token (Unauthorized, one line,
    when it cannot say)."""
    try:
        return token_info(apis.endpoints, apis.transport, apis.credentials.token())
    except CredentialError as exc:
        raise Unauthorized(f"{exc} (whose token is {apis.credentials.describe()}?)") from None
