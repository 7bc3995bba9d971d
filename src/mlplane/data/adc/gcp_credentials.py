"""Application Default Credentials through google-auth, for Google's own endpoints (imported
only when a caller uses them: on `provider = "gcp"`)."""

from __future__ import annotations

import threading

from mlplane.apis.credentials import CredentialError, NotSignedIn


class GoogleAuthCredentials:
    """Application Default Credentials from google-auth (imported only on `provider = "gcp"`)."""

    def __init__(self) -> None:
        try:
            import google.auth
            import google.auth.transport.requests
        except ImportError:
            raise NotSignedIn(
                "provider 'gcp' needs google-auth: pip install 'mlplane[gcp]'"
            ) from None
        try:
            self._creds, self.project = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError
            text = " ".join(str(exc).split())  # one line
            raise NotSignedIn(
                f"no Application Default Credentials: {text} "
                "(run `gcloud auth application-default login`)"
            ) from None
        self._request = google.auth.transport.requests.Request()
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if not self._creds.valid:
                try:
                    self._creds.refresh(self._request)  # type: ignore[no-untyped-call]
                except Exception as exc:  # google.auth.exceptions.RefreshError, TransportError
                    text = " ".join(str(exc).split())[:300]
                    raise CredentialError(
                        f"Application Default Credentials could not get a token: {text} "
                        "(run `gcloud auth application-default login`)"
                    ) from None
            return str(self._creds.token)

    def invalidate(self) -> None:
        with self._lock:
            self._creds.expiry = None
            self._creds.token = None

    def describe(self) -> str:
        account = getattr(self._creds, "service_account_email", None) or "user"
        return f"Application Default Credentials ({account})"


def application_default() -> GoogleAuthCredentials:
    return GoogleAuthCredentials()
