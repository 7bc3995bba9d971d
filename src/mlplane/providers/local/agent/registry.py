"""Artifact Registry, locally: a real OCI registry on loopback behind the agent's identity.

The registry is Debian's `docker-registry` (CNCF distribution 2.8), supervised by the agent, its
blobs under `.mlplane/agent/registry/data` (they outlive the agent), on a port kept across
restarts so image names stay valid. It is configured for Docker's token authentication, as
Artifact Registry is: an anonymous request gets 401 with `WWW-Authenticate: Bearer realm=
"http://127.0.0.1:AGENT/v2/token"`; the client (`docker login -u oauth2accesstoken -p TOKEN`,
the engine, mlplane's registry client) brings an access token the agent issued, as Basic
credentials; the agent maps it to a principal and grants each scope's actions only where the
repository's IAM allows (`pull`: artifactregistry.repositories.downloadArtifacts, `push`:
uploadArtifacts, on `projects/P/locations/L/repositories/R`), refusing a push it does not allow
with 403 naming the permission and the sanctioned path. The registry token is a JWT (ES256, the
signing certificate in `x5c`), valid for five minutes, which the registry itself verifies
against the agent's certificate: the registry enforces what the agent decided.

Pulls made for Cloud Run revisions go as Cloud Run's service agent (Google's runs them as its
own managed identity): a credential of the agent's own, never handed to a workload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import http.client
import json
import logging
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from mlplane.model.images import ImageRef, artifact_registry_host, localize
from mlplane.model.principals import Principal
from mlplane.model.refs import ResourceRef
from mlplane.providers.local.registry_info import REGISTRY_FILE

from .auth import Gate
from .host import Host
from .http_server import Request, Response
from .processes import Supervised, spawn

log = logging.getLogger(__name__)
SERVICE = "mlplane-registry"
ISSUER = "mlplane-agent"
TOKEN_PATH = "/v2/token"
TOKEN_TTL = 300
SERVICE_AGENT = "_mlplane-service-agent"  # the Cloud Run service agent's Basic user name
PULL, PUSH = (
    "artifactregistry.repositories.downloadArtifacts",
    "artifactregistry.repositories.uploadArtifacts",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the registry binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Grant:
    name: str  # PROJECT/REPOSITORY/IMAGE
    actions: tuple[str, ...]


class TokenSigner:
    """An ES256 key and its self-signed certificate (the registry's `rootcertbundle`)."""

    def __init__(self, directory: Path) -> None:
        key_path, cert_path = directory / "token.key", directory / "token.crt"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
            now = datetime.datetime.now(datetime.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(key, hashes.SHA256())
            )
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key, self.cert, self.cert_path = key, cert, cert_path

    def token(self, subject: str, grants: list[Grant], now: float | None = None) -> str:
        now = time.time() if now is None else now
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "iat": int(now),
            "nbf": int(now) - 10,
            "exp": int(now) + TOKEN_TTL,
            "jti": secrets.token_hex(16),
            "access": [
                {"type": "repository", "name": g.name, "actions": list(g.actions)} for g in grants
            ],
        }
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Registry:
    """The supervised registry process and its token endpoint."""

    def __init__(self, host: Host, gate: Gate, region: str, repositories: dict[str, str]) -> None:
        self.host = host
        self.gate = gate
        self.region = region
        self.repositories = set(repositories.values())  # repository ids of the project
        self.dir = host.paths.root / "registry"
        self.port = 0
        self.proc: Supervised | None = None
        self.service_agent_secret = secrets.token_urlsafe(32)
        self.signer: TokenSigner | None = None
        self.unavailable = ""  # why there is no registry, when there is none
        self._stopping = False

    @property
    def address(self) -> str:
        """HOST:PORT of the running registry ('' when there is none)."""
        return f"127.0.0.1:{self.port}" if self.proc is not None else ""

    @property
    def info_file(self) -> Path:
        return self.host.paths.root / REGISTRY_FILE

    # -- supervision ---------------------------------------------------------------------------

    def _port(self) -> int:
        remembered = self.dir / "port"
        with contextlib.suppress(OSError, ValueError):
            port = int(remembered.read_text())
            if port in self.host.ports.in_use or not _free(port):
                raise ValueError
            self.host.ports.in_use.add(port)
            return port
        port = self.host.ports.allocate()
        remembered.write_text(str(port))
        return port

    def _config(self) -> Path:
        realm = f"{self.host.api_url}{TOKEN_PATH}"
        text = (
            "\n".join(
                [
                    "version: 0.1",
                    "log:",
                    "  level: warn",
                    "  accesslog:",
                    "    disabled: true",
                    "storage:",
                    "  filesystem:",
                    f"    rootdirectory: {json.dumps(str(self.dir / 'data'))}",
                    "  delete:",
                    "    enabled: true",
                    "http:",
                    f"  addr: 127.0.0.1:{self.port}",
                    f"  secret: {secrets.token_hex(16)}",
                    "auth:",
                    "  token:",
                    f"    realm: {json.dumps(realm)}",
                    f"    service: {SERVICE}",
                    f"    issuer: {ISSUER}",
                    f"    rootcertbundle: {json.dumps(str(self.dir / 'token.crt'))}",
                ]
            )
            + "\n"
        )
        path = self.dir / "config.yml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    async def start(self) -> None:
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            self.unavailable = (
                "Debian's docker-registry is not installed (apt-get install docker-registry)"
            )
            log.info("no local registry: %s", self.unavailable)
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.signer = TokenSigner(self.dir)
        self.port = self._port()
        config = self._config()
        self.proc = await spawn(
            [binary, "serve", str(config)],
            os.environ,
            self.dir,
            self.host.paths.logs / "registry.log",
            self.host.children,
        )
        if not await self._ready(self.port):
            self.unavailable = f"docker-registry did not listen on 127.0.0.1:{self.port}"
            log.warning("%s (see %s)", self.unavailable, self.host.paths.logs / "registry.log")
            await self._stop_proc()
            return
        self.info_file.write_text(json.dumps({"host": self.address, "pid": self.proc.pid}))
        self.host.background(self._watch(self.proc, binary, config))
        log.info("registry on %s", self.address)

    async def _ready(self, port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                return False
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return True
            await asyncio.sleep(0.05)
        return False

    async def _watch(self, proc: Supervised, binary: str, config: Path) -> None:
        code = await proc.wait()
        self.host.children.remove(proc.pid)
        if self._stopping or self.proc is not proc:
            return
        log.warning("registry exited with %d: restarting it", code)
        await asyncio.sleep(1.0)
        self.proc = await spawn(
            [binary, "serve", str(config)],
            os.environ,
            self.dir,
            self.host.paths.logs / "registry.log",
            self.host.children,
        )
        self.host.background(self._watch(self.proc, binary, config))

    async def _stop_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            await proc.stop(self.host.settings.stop_grace_sec)
            self.host.children.remove(proc.pid)

    async def stop(self) -> None:
        self._stopping = True
        self.info_file.unlink(missing_ok=True)
        await self._stop_proc()

    # -- the token endpoint --------------------------------------------------------------------

    def resource(self, name: str) -> tuple[ResourceRef, str] | None:
        """The repository a registry path (PROJECT/REPOSITORY/IMAGE...) is in, and its name as
        Artifact Registry's errors give it; None for a path outside the project's repositories."""
        parts = name.split("/")
        if len(parts) < 3 or parts[0] != self.gate.project or parts[1] not in self.repositories:
            return None
        google = f"projects/{parts[0]}/locations/{self.region}/repositories/{parts[1]}"
        return ResourceRef("repository", parts[1], parts[0]), google

    def decide(self, principal: Principal | None, scopes: list[str]) -> list[Grant]:
        """The grants for `scopes` (`repository:NAME:pull,push`); PermissionError names the
        first permission refused. `principal` None is the Cloud Run service agent (pull)."""
        grants: list[Grant] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            wanted = [a for a in actions.split(",") if a in ("pull", "push")]
            found = self.resource(name)
            if found is None:
                raise PermissionError(
                    f'Permission "{PULL if "pull" in wanted else PUSH}" denied on resource '
                    f'"{name}": not a repository of project {self.gate.project} '
                    f"({', '.join(sorted(self.repositories))})"
                )
            ref, google = found
            allowed = []
            for action in wanted:
                permission = PUSH if action == "push" else PULL
                if principal is None:
                    if action == "pull":
                        allowed.append(action)
                    continue
                decision = self.gate.authorizer.authorize(principal, (permission,), ref)
                if not decision.allowed:
                    raise PermissionError(
                        f'Permission "{permission}" denied on resource "{google}" '
                        f"(or it may not exist): {decision.explain()}"
                    )
                allowed.append(action)
            grants.append(Grant(name, tuple(allowed)))
        return grants

    async def token(self, req: Request) -> Response:
        """GET /v2/token?service=...&scope=...: Docker's token endpoint."""
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(value).decode().partition(":")
        principal: Principal | None
        if user == SERVICE_AGENT and secrets.compare_digest(password, self.service_agent_secret):
            principal, subject = None, "service-agent"
        else:
            token = self.gate.tokens.lookup(password) if user == "oauth2accesstoken" else None
            if token is None:
                return _denied(
                    401,
                    "UNAUTHORIZED",
                    "authentication required: `docker login -u "
                    'oauth2accesstoken -p "$(mlplane auth print-access-token)"` (an '
                    "access token the agent issued)",
                )
            principal, subject = token.principal, token.principal.email
        scopes = [v for k, v in req.query_pairs if k == "scope"]
        try:
            grants = self.decide(principal, scopes)
        except PermissionError as exc:
            log.info("registry: %s refused: %s", subject, exc)
            return _denied(403, "DENIED", str(exc))
        assert self.signer is not None
        jwt = self.signer.token(subject, grants)
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        return Response.json(
            200, {"token": jwt, "access_token": jwt, "expires_in": TOKEN_TTL, "issued_at": now}
        )

    def localize(self, image: str) -> str:
        """`image` as this machine's engine pulls it: Artifact Registry's host of the project's
        region is the registry on loopback (the emulator's DNS); other names are unchanged."""
        if not self.address:
            return image
        return localize(image, artifact_registry_host(self.region), self.address)

    async def has(self, image: str) -> bool:
        """Whether the registry holds `image` (its tag or digest), asked as the agent itself;
        False for an image of another registry, or when none runs."""
        try:
            ref = ImageRef.parse(self.localize(image))
        except ValueError:
            return False
        if self.signer is None or not self.address or ref.host != self.address:
            return False
        token = self.signer.token(ISSUER, [Grant(ref.path, ("pull",))])
        path = f"/v2/{ref.path}/manifests/{ref.digest or ref.tag or 'latest'}"
        return await asyncio.to_thread(_head, self.port, path, token) == 200

    def docker_config(self, directory: Path, principal_token: str | None) -> Path:
        """A DOCKER_CONFIG directory whose credentials for the registry are `principal_token`
        (an access token), or the service agent's when None."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if principal_token is None:
            auth = f"{SERVICE_AGENT}:{self.service_agent_secret}"
        else:
            auth = f"oauth2accesstoken:{principal_token}"
        body = {"auths": {self.address: {"auth": base64.b64encode(auth.encode()).decode()}}}
        path = directory / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
        return directory


def _head(port: int, path: str, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        accept = "application/vnd.docker.distribution.manifest.v2+json, " + (
            "application/vnd.oci.image.manifest.v1+json"
        )
        conn.request("HEAD", path, headers={"Authorization": f"Bearer {token}", "Accept": accept})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def _denied(status: int, code: str, message: str) -> Response:
    headers = (("WWW-Authenticate", f'Basic realm="{SERVICE}"'),) if status == 401 else ()
    return Response.json(status, {"errors": [{"code": code, "message": message}]}, headers=headers)
