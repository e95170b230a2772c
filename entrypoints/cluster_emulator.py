"""The devcluster's state and rules: kube-apiserver's token endpoints and the kubelet's volumes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import datetime
import ipaddress
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.fake_keyset import API_AUDIENCE, ISSUER, Algorithm, FakeKeySet
from domain.claims import ObjectRef
from domain.ports import Clock

__all__ = [
    "CACHE_CONTROL",
    "DEFAULT_PODS",
    "JWKS_URI",
    "KEY_FAULTS",
    "NODE_NAME",
    "ApiError",
    "Cluster",
    "PodSpec",
    "Review",
    "TlsFiles",
    "parse_pod_spec",
    "status_body",
    "write_projected_volume",
    "write_tls_material",
]

# pkg/routes/openidmetadata.go: both endpoints override the global `private, no-cache`.
CACHE_CONTROL = "public, max-age=3600"
# Real clusters often advertise a jwks_uri that pods cannot reach (SPEC §5).
JWKS_URI = "https://apiserver.invalid:6443/openid/v1/jwks"
NODE_NAME = "devcluster-node"
SERVER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)
KEY_FAULTS = ("ok", "outage", "slow", "garbage", "oversized", "malformed", "redirect")
REVIEW_FAULTS = ("ok", "outage", "slow")
# pkg/apis/authentication/validation: TokenRequest expirationSeconds bounds.
MIN_TOKEN_SECONDS = 10 * 60
MAX_TOKEN_SECONDS = 1 << 32
# Admin-minted tokens may be backdated or postdated, within what timestamps can show.
LATEST_ISSUED_AT = 1 << 33
# go-jose jwt.DefaultLeeway, used by kube-apiserver for exp, nbf and iat.
LEEWAY_SECONDS = 60
# pkg/kubelet/token/token_manager.go: refresh at 80% of the TTL, or after 24 h.
REFRESH_FRACTION = 0.8
MAX_TOKEN_AGE_SECONDS = 24 * 60 * 60
# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated name suffixes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


class ApiError(Exception):
    """A kube-apiserver error answer: HTTP code, Status reason and message."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A metav1.Status failure, members in Go's field order."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = dict(details)
    body["code"] = code
    return body


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- TLS material ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """The CA certificate clients trust and the server certificate and key uvicorn serves."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_pem: bytes


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_usage(*, certificate_authority: bool) -> x509.KeyUsage:
    # A CA signs certificates and CRLs; the server key only signs TLS handshakes (ECDSA).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_authority,
        crl_sign=certificate_authority,
        encipher_only=False,
        decipher_only=False,
    )


def write_tls_material(directory: Path, clock: Clock = time.time) -> TlsFiles:
    """Create a CA and a server certificate for the API server's names and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ksa-auth devcluster CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificate_authority=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in SERVER_NAMES]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(certificate_authority=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    files = TlsFiles(
        ca_file=directory / "ca.crt",
        cert_file=directory / "tls" / "apiserver.crt",
        key_file=directory / "tls" / "apiserver.key",
        ca_pem=ca_pem,
    )
    files.cert_file.parent.mkdir(mode=0o700, exist_ok=True)
    files.ca_file.write_bytes(ca_pem)
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        files.key_file,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return files


# --- the kubelet's atomic writer ------------------------------------------------------------

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"


def write_projected_volume(
    volume: Path, payload: Mapping[str, bytes], modes: Mapping[str, int] | None = None
) -> bool:
    """Publish `payload` in `volume` the way the kubelet's AtomicWriter does.

    pkg/volume/util/atomic_writer.go: the files go into a new `..<timestamp>.<random>`
    directory; the symlink `..data_tmp` -> that directory is renamed over `..data` (one atomic
    step), the user-visible names are symlinks `name` -> `..data/name`, and the previous
    timestamped directory is removed. A reader that opens `token` sees the old or the new
    file, never a mix. Returns False when the payload is unchanged (nothing written).
    """
    volume.mkdir(parents=True, exist_ok=True)
    data_link = volume / DATA_DIR
    old_dir: Path | None = None
    with contextlib.suppress(FileNotFoundError, OSError):
        old_dir = volume / os.readlink(data_link)
    if old_dir is not None and old_dir.is_dir():
        current = {
            name: (old_dir / name).read_bytes() for name in payload if (old_dir / name).exists()
        }
        if current == dict(payload) and set(os.listdir(old_dir)) == set(payload):
            return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=volume))
    new_dir.chmod(0o755)
    for name, content in payload.items():
        _write_private(new_dir / name, content, (modes or {}).get(name, 0o644))
    tmp_link = volume / DATA_DIR_TMP
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(new_dir.name, tmp_link)
    os.replace(tmp_link, data_link)
    for name in payload:
        visible = volume / name
        if not visible.is_symlink():
            os.symlink(f"{DATA_DIR}/{name}", visible)
    if old_dir is not None and old_dir != new_dir:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


# --- the cluster model ----------------------------------------------------------------------


@dataclass(frozen=True)
class PodSpec:
    """A pod to run: `<app>-<suffix>` in `namespace` as `service_account`, with extra
    projected tokens for `extra_audiences` (one volume `<audience>-token` each)."""

    app: str
    service_account: str
    namespace: str = "default"
    extra_audiences: tuple[str, ...] = ()


DEFAULT_PODS = (
    PodSpec("be", "be-sa", extra_audiences=("be2",)),
    PodSpec("be2", "be2-sa"),
)


def parse_pod_spec(text: str) -> PodSpec:
    """`[namespace/]app:service-account[:audience,...]`, e.g. `default/be:be-sa:be2`."""
    head, _, rest = text.partition(":")
    namespace, _, app = head.rpartition("/")
    service_account, _, audiences = rest.partition(":")
    spec = PodSpec(
        app=app,
        service_account=service_account,
        namespace=namespace or "default",
        extra_audiences=tuple(a for a in audiences.split(",") if a),
    )
    for value in (spec.app, spec.service_account, spec.namespace):
        if not _NAME.match(value) or len(value) > 63:
            raise ValueError(f"pod spec {text!r}: {value!r} is not a valid Kubernetes name")
    return spec


@dataclass
class ServiceAccount:
    namespace: str
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class ProjectedToken:
    """One `serviceAccountToken` projection the kubelet keeps fresh in a volume."""

    volume: Path
    audiences: tuple[str, ...]
    expiration_seconds: int
    issued_at: float = 0.0
    # What TokenRequest's status.expirationTimestamp said: the requested, unextended time.
    expires_at: float = 0.0

    def refresh_at(self) -> float:
        # token_manager.go requiresRefresh: older than 80% of its TTL, or than 24 h.
        ttl = self.expires_at - self.issued_at
        return self.issued_at + min(ttl * REFRESH_FRACTION, MAX_TOKEN_AGE_SECONDS)


@dataclass
class Pod:
    namespace: str
    name: str
    service_account: str
    node: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    volume: Path = Path()
    projections: list[ProjectedToken] = field(default_factory=list)

    @property
    def token_file(self) -> Path:
        return self.volume / "token"


@dataclass
class Review:
    """The outcome of authenticating a bearer token, as TokenReview reports it."""

    authenticated: bool
    error: str = ""
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)
    audiences: tuple[str, ...] = ()

    def status(self) -> dict[str, Any]:
        """TokenReviewStatus as kube-apiserver encodes it (Go omitempty: no false, no "")."""
        user: dict[str, Any] = {}
        if self.username:
            user["username"] = self.username
        if self.uid:
            user["uid"] = self.uid
        if self.groups:
            user["groups"] = list(self.groups)
        if self.extra:
            # A Go map: encoding/json writes its keys sorted.
            user["extra"] = dict(sorted(self.extra.items()))
        status: dict[str, Any] = {}
        if self.authenticated:
            status["authenticated"] = True
        status["user"] = user
        if self.audiences:
            status["audiences"] = list(self.audiences)
        if self.error:
            status["error"] = self.error
        return status


class _Invalid(Exception):
    """A token the service account authenticator recognised and rejected."""


class _Unrecognised(Exception):
    """A token the service account authenticator does not handle (not a JWT of our issuer)."""


@dataclass
class Faults:
    keys: str = "ok"
    delay_seconds: float = 0.0
    tokenreview: str = "ok"
    endpoints: tuple[str, ...] = ("discovery", "jwks")

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "delay_seconds": self.delay_seconds,
            "tokenreview": self.tokenreview,
            "endpoints": list(self.endpoints),
        }


def _b64decode_raw(segment: str) -> bytes:
    # Go's base64.RawURLEncoding: no padding accepted.
    if "=" in segment:
        raise binascii.Error("padding")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _go_quote_list(values: Iterable[str]) -> str:
    # fmt's %q on a []string: ["a" "b"].
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


class Cluster:
    """An in-memory cluster: service accounts, pods on one node, a signing keyset, and the
    kubelet that keeps each pod's projected tokens fresh on disk."""

    def __init__(
        self,
        state_dir: Path,
        *,
        token_ttl: int = 3607,
        pods: Sequence[PodSpec] = DEFAULT_PODS,
        algorithm: Algorithm = "RS256",
        clock: Clock = time.time,
    ) -> None:
        if token_ttl < 1:
            raise ValueError("--token-ttl must be at least 1 second")
        self.state_dir = state_dir.resolve()
        self.token_ttl = token_ttl
        self.clock = clock
        self.issuer = ISSUER
        self.api_audiences: tuple[str, ...] = (API_AUDIENCE,)
        self.keyset = FakeKeySet(
            algorithm, issuer=self.issuer, api_audiences=self.api_audiences, clock=clock
        )
        self.admin_token = secrets.token_urlsafe(32)
        self.counters: collections.Counter[str] = collections.Counter()
        self.faults = Faults()
        self.url = ""
        self.admin_url = ""
        self.node = ObjectRef(NODE_NAME, str(uuid.uuid4()))
        self.service_accounts: dict[tuple[str, str], ServiceAccount] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self._kubelet: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls = write_tls_material(self.state_dir, clock)
        # Pod names are new on every start: volumes of an earlier run would only mislead.
        shutil.rmtree(self.state_dir / "pods", ignore_errors=True)
        for spec in pods:
            self.add_pod(spec)

    # --- objects ----------------------------------------------------------------------------

    def service_account(self, namespace: str, name: str, *, create: bool = False) -> ServiceAccount:
        found = self.service_accounts.get((namespace, name))
        if found is None:
            if not create:
                raise _not_found("serviceaccounts", name)
            found = self.service_accounts[(namespace, name)] = ServiceAccount(namespace, name)
        return found

    def add_pod(self, spec: PodSpec) -> Pod:
        """Schedule a pod: its service account exists, its projected volumes are written."""
        self.service_account(spec.namespace, spec.service_account, create=True)
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        name = f"{spec.app}-{suffix}"
        base = self.state_dir / "pods" / spec.namespace / name
        pod = Pod(
            spec.namespace, name, spec.service_account, NODE_NAME, volume=base / "serviceaccount"
        )
        # The kube-api-access volume: API audience, 3607 s as the admission plugin sets it.
        pod.projections.append(ProjectedToken(pod.volume, self.api_audiences, self.token_ttl))
        for audience in spec.extra_audiences:
            volume = base / f"{re.sub(r'[^a-z0-9.-]+', '-', audience.lower()).strip('-.')}-token"
            pod.projections.append(ProjectedToken(volume, (audience,), self.token_ttl))
        self.pods[(pod.namespace, pod.name)] = pod
        for projection in pod.projections:
            self._write_projection(pod, projection)
        return pod

    def find_pod(self, namespace: str, name: str) -> Pod:
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise _not_found("pods", name)
        return pod

    def delete_pod(self, namespace: str, name: str) -> Pod:
        """Delete a pod: its tokens stop validating and the kubelet stops refreshing them."""
        pod = self.find_pod(namespace, name)
        del self.pods[(namespace, name)]
        self.counters["pods_deleted"] += 1
        return pod

    # --- tokens -----------------------------------------------------------------------------

    def issue(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Sequence[str] | None = None,
        expiration_seconds: int = 3600,
        pod: Pod | None = None,
        node: ObjectRef | None = None,
        issued_at: float | None = None,
        key: str | None = None,
    ) -> tuple[str, float]:
        """Mint a token as TokenRequest does; return it and status.expirationTimestamp."""
        account = self.service_account(namespace, service_account)
        now = int(issued_at if issued_at is not None else self.clock())
        token = self.keyset.mint(
            namespace=namespace,
            service_account=account.name,
            service_account_uid=account.uid,
            audiences=list(audiences) if audiences else list(self.api_audiences),
            expiration_seconds=expiration_seconds,
            pod=ObjectRef(pod.name, pod.uid) if pod is not None else None,
            # ServiceAccountTokenPodNodeInfo: a pod-bound token also names the pod's node.
            node=self.node if pod is not None else node,
            issued_at=now,
            key=key,
        )
        self.counters["tokens_issued"] += 1
        # token.go: the status reports the requested expiration, even when `exp` was extended.
        return token, float(now + expiration_seconds)

    def _write_projection(self, pod: Pod, projection: ProjectedToken) -> None:
        token, expires_at = self.issue(
            pod.namespace,
            pod.service_account,
            audiences=projection.audiences,
            expiration_seconds=projection.expiration_seconds,
            pod=pod,
        )
        projection.issued_at = self.clock()
        projection.expires_at = expires_at
        write_projected_volume(
            projection.volume,
            {
                "token": token.encode(),
                "ca.crt": self.tls.ca_pem,
                "namespace": pod.namespace.encode(),
            },
            {"token": 0o600},
        )
        self.counters["token_writes"] += 1

    def refresh_tokens(self, *, force: bool = False) -> int:
        """Rewrite every projected token due for refresh (all with `force`); return how many."""
        now = self.clock()
        written = 0
        for pod in list(self.pods.values()):
            for projection in pod.projections:
                if force or now >= projection.refresh_at():
                    self._write_projection(pod, projection)
                    written += 1
        return written

    def next_refresh(self) -> float | None:
        due = [p.refresh_at() for pod in self.pods.values() for p in pod.projections]
        return min(due) if due else None

    async def _run_kubelet(self) -> None:
        while True:
            self.refresh_tokens()
            due = self.next_refresh()
            delay = 1.0 if due is None else min(max(due - self.clock(), 0.01), 1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def start_kubelet(self) -> None:
        if self._kubelet is None:
            self._wake = asyncio.Event()
            self._kubelet = asyncio.get_running_loop().create_task(self._run_kubelet())

    async def stop_kubelet(self) -> None:
        task, self._kubelet = self._kubelet, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- authentication (pkg/serviceaccount/jwt.go + claims.go) ------------------------------

    def authenticate(self, token: str, audiences: Sequence[str] | None = None) -> Review:
        """Authenticate a bearer token for `audiences` (default: the API audiences)."""
        requested = tuple(audiences) if audiences else self.api_audiences
        try:
            return self._authenticate(token, requested)
        except _Unrecognised:
            # No authenticator took the token: bearertoken.go's default error.
            return Review(False, "invalid bearer token")
        except _Invalid as exc:
            # The union of request authenticators aggregates the errors, as seen in
            # kube-apiserver's logs and TokenReview answers.
            return Review(False, f"[invalid bearer token, {exc}]")

    def _authenticate(self, token: str, requested: tuple[str, ...]) -> Review:
        token = token.strip()
        parts = token.split(".")
        if token.startswith("{") or len(parts) != 3:
            raise _Unrecognised
        try:
            header = json.loads(_b64decode_raw(parts[0]))
            payload = json.loads(_b64decode_raw(parts[1]))
            signature = _b64decode_raw(parts[2])
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise _Unrecognised from exc
        # hasCorrectIssuer: only tokens claiming our issuer are this authenticator's.
        if not isinstance(payload, dict) or payload.get("iss") != self.issuer:
            raise _Unrecognised
        if not isinstance(header, dict):
            raise _Unrecognised
        kid = header.get("kid") if isinstance(header.get("kid"), str) else ""
        candidates = [k for k in self.keyset.published_kids if not kid or k == kid]
        if not candidates:
            raise _Invalid("invalid signature, no keys found")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
        errors = [self._verify(k, header.get("alg"), signing_input, signature) for k in candidates]
        if all(errors):
            messages = [e for e in errors if e]
            raise _Invalid(messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]")
        return self._validate(payload, requested)

    def _verify(self, kid: str, alg: Any, signing_input: bytes, signature: bytes) -> str:
        key = self.keyset.signing_key(kid)
        if alg not in ("RS256", "ES256"):
            return "go-jose/go-jose: unknown/unsupported algorithm"
        if alg != key.alg:
            return "go-jose/go-jose: error in cryptographic primitive"
        public = key.private_key.public_key()
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(signature) != 64:
                    return "go-jose/go-jose: error in cryptographic primitive"
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return "go-jose/go-jose: error in cryptographic primitive"
        return ""

    def _validate(self, payload: dict[str, Any], requested: tuple[str, ...]) -> Review:
        aud = payload.get("aud")
        token_audiences = (aud,) if isinstance(aud, str) else tuple(aud or ())
        if not all(isinstance(a, str) for a in token_audiences):
            raise _Invalid("service account token claims could not be validated")
        if not token_audiences:
            token_audiences = self.api_audiences  # legacy tokens: the implicit audiences
        granted = tuple(a for a in token_audiences if a in requested)
        if not granted:
            raise _Invalid(
                f"token audiences {_go_quote_list(token_audiences)} is invalid for the target "
                f"audiences {_go_quote_list(requested)}"
            )
        now = self.clock()
        times = {name: payload.get(name) for name in ("nbf", "exp", "iat")}
        if any(v is not None and not isinstance(v, int | float) for v in times.values()):
            raise _Invalid("service account token claims could not be validated")
        nbf, exp, iat = times["nbf"], times["exp"], times["iat"]
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise _Invalid("service account token is not valid yet")
        if exp is not None and now - LEEWAY_SECONDS > exp:
            raise _Invalid("service account token has expired")
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise _Invalid("service account token is issued in the future")
        private = payload.get("kubernetes.io")
        if not isinstance(private, dict):
            raise _Invalid("service account token claims could not be validated")
        namespace = private.get("namespace")
        sa_ref = _ref(private.get("serviceaccount"))
        if not isinstance(namespace, str) or sa_ref is None:
            raise _Invalid("service account token claims could not be validated")
        account = self.service_accounts.get((namespace, sa_ref.name))
        if account is None:
            raise _Invalid(f'serviceaccounts "{sa_ref.name}" not found')
        if account.uid != sa_ref.uid:
            raise _Invalid(
                f"service account UID ({account.uid}) does not match claim ({sa_ref.uid})"
            )
        if private.get("secret") is not None:
            # No Secrets here: a secret-bound token's secret is gone.
            raise _Invalid("service account token has been invalidated")
        pod_ref, node_ref = _ref(private.get("pod")), _ref(private.get("node"))
        extra: dict[str, list[str]] = {}
        if pod_ref is not None:
            pod = self.pods.get((namespace, pod_ref.name))
            if pod is None:
                raise _Invalid("service account token has been invalidated")
            if pod.uid != pod_ref.uid:
                raise _Invalid(
                    f"pod UID ({pod.uid}) does not match service account pod ref claim "
                    f"({pod_ref.uid})"
                )
            extra["authentication.kubernetes.io/pod-name"] = [pod_ref.name]
            extra["authentication.kubernetes.io/pod-uid"] = [pod_ref.uid]
        elif node_ref is not None:
            if node_ref.name != self.node.name:
                raise _Invalid("service account token has been invalidated")
            if node_ref.uid != self.node.uid:
                raise _Invalid(
                    f"node UID ({self.node.uid}) does not match service account node ref claim "
                    f"({node_ref.uid})"
                )
        jti = payload.get("jti")
        if isinstance(jti, str) and jti:
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={jti}"]
        if node_ref is not None:
            extra["authentication.kubernetes.io/node-name"] = [node_ref.name]
            if node_ref.uid:
                extra["authentication.kubernetes.io/node-uid"] = [node_ref.uid]
        return Review(
            True,
            username=f"system:serviceaccount:{namespace}:{sa_ref.name}",
            uid=sa_ref.uid,
            groups=(
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
            extra=extra,
            audiences=granted,
        )

    def authenticate_header(self, authorization: str | None) -> Review:
        """authenticator/request/bearertoken: `Bearer <token>` (scheme case-insensitive)."""
        parts = (authorization or "").strip().split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return Review(False, "")
        return self.authenticate(parts[1])

    # --- API objects ------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """pkg/serviceaccount/openidmetadata.go openIDMetadata, in its field order."""
        return {
            "issuer": self.issuer,
            "jwks_uri": JWKS_URI,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.keyset.algorithms(),
        }

    def token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """POST .../serviceaccounts/{name}/token (pkg/registry/core/serviceaccount/storage)."""
        if not isinstance(body, dict):
            raise _bad_request("the body of the request is not a TokenRequest object")
        metadata = body.get("metadata") or {}
        spec = body.get("spec") or {}
        if not isinstance(metadata, dict) or not isinstance(spec, dict):
            raise _bad_request("the body of the request is not a TokenRequest object")
        if metadata.get("name") not in (None, "", name):
            raise _invalid(
                name,
                "metadata.name",
                metadata["name"],
                "must match the service account name if specified",
            )
        if metadata.get("namespace") not in (None, "", namespace):
            raise _invalid(
                name,
                "metadata.namespace",
                metadata["namespace"],
                "must match the service account namespace if specified",
            )
        account = self.service_account(namespace, name)
        audiences = spec.get("audiences") or list(self.api_audiences)
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise _bad_request("spec.audiences must be a list of strings")
        expiration = spec.get("expirationSeconds", 3600)
        if isinstance(expiration, bool) or not isinstance(expiration, int):
            raise _bad_request("spec.expirationSeconds must be an integer")
        if expiration < MIN_TOKEN_SECONDS:
            raise _invalid(
                "",
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            )
        if expiration > MAX_TOKEN_SECONDS:
            raise _invalid(
                "",
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            )
        ref = spec.get("boundObjectRef")
        pod, node = self._bound_object(namespace, name, ref)
        now = self.clock()
        token, expires_at = self.issue(
            namespace,
            account.name,
            audiences=audiences,
            expiration_seconds=expiration,
            pod=pod,
            node=node,
            issued_at=now,
        )
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": _timestamp(now),
            },
            "spec": {
                "audiences": audiences,
                "expirationSeconds": expiration,
                "boundObjectRef": ref,
            },
            "status": {"token": token, "expirationTimestamp": _timestamp(expires_at)},
        }

    def _bound_object(
        self, namespace: str, name: str, ref: Any
    ) -> tuple[Pod | None, ObjectRef | None]:
        if ref is None:
            return None, None
        if not isinstance(ref, dict):
            raise _bad_request("spec.boundObjectRef must be an object")
        kind, api_version = str(ref.get("kind") or ""), str(ref.get("apiVersion") or "v1")
        ref_name, ref_uid = str(ref.get("name") or ""), str(ref.get("uid") or "")
        group, _, version = api_version.rpartition("/")
        pod: Pod | None = None
        node: ObjectRef | None = None
        if group == "" and kind == "Pod":
            pod = self.find_pod(namespace, ref_name)
            if pod.service_account != name:
                raise _bad_request(
                    f'cannot bind token for serviceaccount "{name}" to pod running with '
                    "different serviceaccount name."
                )
            uid = pod.uid
        elif group == "" and kind == "Node":
            if ref_name != self.node.name:
                raise _not_found("nodes", ref_name)
            node, uid = self.node, self.node.uid
        elif group == "" and kind == "Secret":
            raise _not_found("secrets", ref_name)
        else:
            raise _bad_request(
                f"cannot bind token to object of type {group}/{version}, Kind={kind}"
            )
        if ref_uid and ref_uid != uid:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind} "{ref_name}": the UID in the bound '
                f"object reference ({ref_uid}) does not match the UID in record. The object "
                "might have been deleted and then recreated",
                {"name": ref_name, "kind": kind},
            )
        return pod, node

    def token_review(self, body: Any) -> dict[str, Any]:
        """POST /apis/authentication.k8s.io/v1/tokenreviews (pkg/registry/authentication)."""
        if not isinstance(body, dict) or body.get("kind", "TokenReview") != "TokenReview":
            raise _bad_request("the body of the request is not a TokenReview object")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise _bad_request("the body of the request is not a TokenReview object")
        token, audiences = spec.get("token"), spec.get("audiences") or []
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise _bad_request("spec.audiences must be a list of strings")
        if not isinstance(token, str) or not token:
            raise _bad_request("token is required for TokenReview in authentication")
        review = self.authenticate(token, audiences or None)
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            # kube-apiserver echoes the spec it was sent, token included.
            "spec": {"token": token, **({"audiences": audiences} if audiences else {})},
            "status": review.status(),
        }

    # --- admin ------------------------------------------------------------------------------

    def set_faults(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _only(body, "keys", "delay_seconds", "tokenreview", "endpoints")
        keys = body.get("keys", self.faults.keys)
        review = body.get("tokenreview", self.faults.tokenreview)
        delay = body.get("delay_seconds", self.faults.delay_seconds)
        endpoints = body.get("endpoints", list(self.faults.endpoints))
        if keys not in KEY_FAULTS:
            raise _bad_request(f"keys must be one of {', '.join(KEY_FAULTS)}")
        if review not in REVIEW_FAULTS:
            raise _bad_request(f"tokenreview must be one of {', '.join(REVIEW_FAULTS)}")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60:
            raise _bad_request("delay_seconds must be a number from 0 to 60")
        if not isinstance(endpoints, list) or not set(endpoints) <= {"discovery", "jwks"}:
            raise _bad_request('endpoints must be a list of "discovery" and "jwks"')
        self.faults = Faults(str(keys), float(delay), str(review), tuple(endpoints))
        return self.faults.as_dict()

    def mint(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The admin mint: any service account (created on demand), any audiences and TTL."""
        _only(
            body,
            "namespace",
            "service_account",
            "audiences",
            "expiration_seconds",
            "pod",
            "issued_at",
            "kid",
        )
        namespace = body.get("namespace", "default")
        name = body.get("service_account")
        audiences = body.get("audiences") or list(self.api_audiences)
        expiration = body.get("expiration_seconds", 3600)
        pod_name = body.get("pod")
        issued_at = body.get("issued_at")
        kid = body.get("kid")
        if not isinstance(namespace, str) or not isinstance(name, str) or not name:
            raise _bad_request("namespace and service_account must be strings")
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise _bad_request("audiences must be a list of strings")
        if (
            isinstance(expiration, bool)
            or not isinstance(expiration, int)
            or not 1 <= expiration <= MAX_TOKEN_SECONDS
        ):
            raise _bad_request("expiration_seconds must be an integer from 1 to 2^32")
        if issued_at is not None and not (
            isinstance(issued_at, int | float)
            and not isinstance(issued_at, bool)
            and 0 <= issued_at <= LATEST_ISSUED_AT
        ):
            raise _bad_request("issued_at must be seconds since the epoch (0 to 2^33)")
        if kid is not None and kid not in self.keyset.published_kids:
            raise _not_found("signingkeys", str(kid))
        self.service_account(namespace, name, create=True)
        pod = None
        if pod_name is not None:
            if not isinstance(pod_name, str):
                raise _bad_request("pod must be a pod name or null")
            pod = self.find_pod(namespace, pod_name)
        token, expires_at = self.issue(
            namespace,
            name,
            audiences=audiences,
            expiration_seconds=expiration,
            pod=pod,
            issued_at=issued_at,
            key=kid,
        )
        return {"token": token, "expiration_timestamp": _timestamp(expires_at)}

    def rotate_signing_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _only(body, "retire_previous", "algorithm")
        retire = body.get("retire_previous", False)
        algorithm = body.get("algorithm")
        if not isinstance(retire, bool):
            raise _bad_request("retire_previous must be a boolean")
        if algorithm not in (None, "RS256", "ES256"):
            raise _bad_request("algorithm must be RS256 or ES256")
        kid = self.keyset.rotate(algorithm, retire_previous=retire)
        self.counters["key_rotations"] += 1
        return {"kid": kid, "published": list(self.keyset.published_kids)}

    def retire_signing_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _only(body, "kid")
        kid = body.get("kid")
        if not isinstance(kid, str):
            raise _bad_request("kid must be a string")
        if kid not in self.keyset.published_kids:
            raise _not_found("signingkeys", kid)
        if kid == self.keyset.signing_kid:
            raise _bad_request("the current signing key cannot be retired; rotate first")
        self.keyset.retire(kid)
        return {"retired": kid, "published": list(self.keyset.published_kids)}

    def pod_json(self, pod: Pod) -> dict[str, Any]:
        extra = {
            p.audiences[0]: str(p.volume / "token") for p in pod.projections[1:] if p.audiences
        }
        return {
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
            "service_account": pod.service_account,
            "service_account_uid": self.service_account(pod.namespace, pod.service_account).uid,
            "node": pod.node,
            "node_uid": self.node.uid,
            "volume": str(pod.volume),
            "token_file": str(pod.volume / "token"),
            "ca_file": str(pod.volume / "ca.crt"),
            "namespace_file": str(pod.volume / "namespace"),
            "extra_tokens": extra,
        }

    def state(self) -> dict[str, Any]:
        return {
            **{
                name: self.counters[name]
                for name in (
                    "discovery_requests",
                    "jwks_requests",
                    "tokenreview_requests",
                    "tokenrequest_requests",
                    "unauthorized_requests",
                    "redirect_target_requests",
                    "redirect_target_authorization",
                    "tokens_issued",
                    "token_writes",
                    "key_rotations",
                    "pods_deleted",
                )
            },
            "faults": self.faults.as_dict(),
            "signing_kid": self.keyset.signing_kid,
            "published_kids": list(self.keyset.published_kids),
            "pods": [self.pod_json(p) for p in self.pods.values()],
        }

    def cluster_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ca_file": str(self.tls.ca_file),
            "issuer": self.issuer,
            "api_audience": self.api_audiences[0],
            "discovery_url": f"{self.url}/.well-known/openid-configuration",
            "jwks_url": f"{self.url}/openid/v1/jwks",
            "admin_url": self.admin_url,
            "admin_token": self.admin_token,
            "pid": os.getpid(),
            "token_ttl": self.token_ttl,
            "pods": [self.pod_json(p) for p in self.pods.values()],
        }

    def write_cluster_json(self) -> Path:
        """Write DIR/cluster.json atomically (temp file + rename), readable by the user only:
        it holds the admin token."""
        path = self.state_dir / "cluster.json"
        tmp = self.state_dir / f".cluster.json.{os.getpid()}.tmp"
        _write_private(tmp, json.dumps(self.cluster_json(), indent=2).encode() + b"\n")
        os.replace(tmp, path)
        return path


def _invalid(name: str, path: str, value: Any, message: str) -> ApiError:
    shown = json.dumps(value) if isinstance(value, str) else value
    return ApiError(
        422,
        "Invalid",
        f'TokenRequest.authentication.k8s.io "{name}" is invalid: {path}: Invalid value: '
        f"{shown}: {message}",
        {
            "name": name,
            "group": "authentication.k8s.io",
            "kind": "TokenRequest",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {shown}: {message}",
                    "field": path,
                }
            ],
        },
    )


def _only(body: Mapping[str, Any], *allowed: str) -> None:
    # Admin bodies are strict: a misspelt field must not silently do the default thing.
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise _bad_request(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _ref(value: Any) -> ObjectRef | None:
    if not isinstance(value, dict):
        return None
    name, uid = value.get("name", ""), value.get("uid", "")
    if not isinstance(name, str) or not isinstance(uid, str):
        return None
    return ObjectRef(name, uid)
