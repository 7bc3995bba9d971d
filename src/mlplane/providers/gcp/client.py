"""The one client of Google's REST APIs: to Google's endpoints or to the local agent's.

    apis = GoogleApis(Endpoints.agent("http://127.0.0.1:PORT"), credentials)
    apis.call("compute.urlMaps.get", {"project": "p", "urlMap": "m"})

A call is a discovery method id and its parameters; the URL comes from the shipped discovery
document, the bearer token from the credentials (refreshed once on a 401), and every error
becomes mlplane's taxonomy (`error_for_status`) at this boundary: nothing above sees HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlplane.apis.credentials import CredentialError, Credentials, NotSignedIn
from mlplane.apis.discovery import method as discovery_method
from mlplane.apis.endpoints import Endpoints
from mlplane.apis.errors import ApiError
from mlplane.apis.request import Request
from mlplane.apis.transport import HttpResponse, Transport, TransportError
from mlplane.errors import MlplaneError, PermanentError
from mlplane.model.compute import ResourceKey
from mlplane.providers.errors import ProviderUnavailable, error_for_status

__all__ = ["GoogleApis", "Request", "Unauthorized"]


class Unauthorized(PermanentError):
    """The endpoint refused the credentials (401), even after a refresh."""

    exit_code = 3


class GoogleApis:
    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials,
        transport: Transport | None = None,
        *,
        on_request: Callable[[Request], None] | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.credentials = credentials
        self.transport = transport or Transport()
        self.on_request = on_request

    def request(self, method_id: str, params: Mapping[str, Any], body: Any = None) -> Request:
        m = discovery_method(method_id)
        api = method_id.split(".", 1)[0]
        return Request(m.http_method, m.url(self.endpoints.root(api), dict(params)), body)

    def call(
        self,
        method_id: str,
        params: Mapping[str, Any],
        body: Any = None,
        *,
        key: ResourceKey | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one call; return the decoded JSON or raise mlplane's error for the answer."""
        req = self.request(method_id, params, body)
        if self.on_request is not None:
            self.on_request(req)
        resp = self._send(req, timeout)
        if resp.status == 401:
            self.credentials.invalidate()
            resp = self._send(req, timeout)
        if resp.status < 300:
            return resp.body
        raise self.error(resp, key)

    def _token(self) -> str:
        try:
            return self.credentials.token()
        except (NotSignedIn, CredentialError) as exc:
            raise Unauthorized(str(exc)) from None

    def _send(self, req: Request, timeout: float | None) -> HttpResponse:
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            return self.transport.json(req.http_method, req.url, req.body, headers, timeout)
        except TransportError as exc:
            raise ProviderUnavailable(
                f"{req.http_method} {req.url} got no answer ({exc.cause}){_hint(self.endpoints)}"
            ) from None

    def error(self, resp: HttpResponse, key: ResourceKey | None) -> MlplaneError:
        err = ApiError.from_json(resp.status, resp.body)
        if resp.status == 401:
            return Unauthorized(f"{err.message} (credentials: {self.credentials.describe()})")
        return error_for_status(resp.status, err.message, reason=err.reason, key=key)


def _hint(endpoints: Endpoints) -> str:
    return "" if endpoints.is_google else ": is the local agent running? (`mlplane up`)"
