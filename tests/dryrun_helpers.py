"""Reading `--dry-run` output back, and holding it against Google's discovery documents and
against what a real run sends."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlplane.apis.discovery import VERSIONS, load
from mlplane.apis.endpoints import Endpoints
from mlplane.apis.request import Request
from mlplane.apis.schema import validate


def parse(out: str) -> list[Request]:
    """The request blocks of a rendered dry run (comment blocks skipped)."""
    found = []
    for block in out.strip().split("\n\n"):
        if not block or block.startswith("#"):
            continue
        first, *rest = block.splitlines()
        method, url = first.split(" ", 1)
        headers = []
        while rest and not rest[0].startswith(("{", "<")):
            name, _, value = rest.pop(0).partition(": ")
            headers.append((name, value))
        media = rest.pop() if rest and rest[-1].startswith("<") else None
        body = json.loads("\n".join(rest)) if rest else None
        found.append(Request(method, url, body, tuple(headers), media))
    return found


def method_id(req: Request, endpoints: Endpoints) -> str:
    """The discovery method `req` calls, after checking its body against the method's schema
    (Google's 400 rules: unknown fields, wrong types, missing required fields)."""
    for api in VERSIONS:
        base = endpoints.url(api)
        if not req.url.startswith(base):
            continue
        relative = urlsplit(req.url[len(base) :]).path
        doc = load(api)
        found = doc.route(req.http_method, relative)
        assert found is not None, f"no {api} method serves {req.http_method} {req.url}"
        method, _ = found
        query = dict(parse_qsl(urlsplit(req.url).query))
        unknown = set(query) - set(method.parameters)
        assert not unknown, f"{method.id}: unknown query parameters {unknown}"
        if method.request:
            problems = validate(doc, method.request, req.body, method_id=method.id)
            assert problems == [], f"{method.id}: {problems}"
        else:
            assert req.body is None, f"{method.id} takes no body"
        return method.id
    raise AssertionError(f"{req.url} is not one of Google's APIs at {endpoints}")


def _normal_body(body: Any) -> Any:
    """A body without what differs between two runs by design: the fingerprint an update
    carries (read just before it) and the config id a submit returns."""
    if not isinstance(body, dict):
        return body
    out = {k: v for k, v in body.items() if k != "fingerprint"}
    strategy = out.get("trafficPercentStrategy")
    if isinstance(strategy, dict):
        [share] = strategy.get("percentages", {}).values()  # one config, at 100 %
        out["trafficPercentStrategy"] = {"percentages": {"<CONFIG_ID>": share}}
    return out


def _normal_url(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "requestId"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def wire(requests: Iterable[Request]) -> list[tuple[str, str, str]]:
    """The mutating calls among `requests`, comparable across runs: without request ids,
    fingerprints and server-assigned config ids, and without operation waits (POSTs that
    change nothing), sorted (apply runs independent steps in parallel)."""
    out = []
    for r in requests:
        if not r.mutates or urlsplit(r.url).path.endswith("/wait"):
            continue
        body = json.dumps(_normal_body(r.body), sort_keys=True)
        out.append((r.http_method, _normal_url(r.url), body))
    return sorted(out)
