"""A KeyProvider over in-memory keys that also mints tokens exactly as kube-apiserver does."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from domain.claims import ObjectRef
from domain.errors import UnknownKey
from domain.jws import b64url_encode
from domain.ports import Clock, KeyProvider, PublicJwk

__all__ = [
    "API_AUDIENCE",
    "EXPIRATION_EXTENSION_SECONDS",
    "ISSUER",
    "WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS",
    "Algorithm",
    "FakeKeySet",
    "SigningKey",
    "TokenOptions",
    "key_id",
]

Algorithm = Literal["RS256", "ES256"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

ISSUER = "https://kubernetes.default.svc.cluster.local"
# kube-apiserver's --api-audiences default to the issuer.
API_AUDIENCE = ISSUER
# pkg/serviceaccount/claims.go: the kubelet's default `kube-api-access` request is 3607 s; such a
# pod-bound, API-audience request is extended to a year, with `warnafter` at the requested time.
WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS = 60 * 60 + 7
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60


def key_id(public_key: PublicKey) -> str:
    """The kid Kubernetes gives a key: base64url (no padding) of SHA-256 over its DER SPKI.

    pkg/serviceaccount/jwt.go keyIDFromPublicKey.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url_encode(hashlib.sha256(der).digest())


def _int_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def _json(data: Mapping[str, Any]) -> bytes:
    # go-jose builds the payload by merging claims through map[string]interface{}, so Go's
    # encoding/json writes every object's keys sorted, with no spaces.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class TokenOptions(TypedDict, total=False):
    """What a TokenRequest may ask beyond the service account, each with kube-apiserver's default.

    `audiences` (the API audiences), `expiration_seconds` (3600), the bound object (`pod`, `node`
    or `secret`; a pod-bound token also names its pod's `node`), `issued_at` (now), `jti` (a UUID).
    """

    audiences: Iterable[str] | None
    expiration_seconds: int
    pod: ObjectRef | None
    node: ObjectRef | None
    secret: ObjectRef | None
    issued_at: float | None
    jti: str | None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with its kid and algorithm, as kube-apiserver's token signer holds it."""

    kid: str
    alg: Algorithm
    private_key: PrivateKey

    @classmethod
    def generate(cls, alg: Algorithm = "RS256") -> SigningKey:
        private_key: PrivateKey
        if alg == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"unsupported algorithm {alg!r}: RS256 or ES256")
        return cls(kid=key_id(private_key.public_key()), alg=alg, private_key=private_key)

    def public_jwk(self) -> dict[str, str]:
        """The JWK kube-apiserver publishes, members in go-jose's order."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {
                "use": "sig",
                "kty": "RSA",
                "kid": self.kid,
                "alg": self.alg,
                "n": b64url_encode(_int_bytes(numbers.n)),
                "e": b64url_encode(_int_bytes(numbers.e)),
            }
        point = public.public_numbers()
        # RFC 7518 §6.2.1.2: coordinates are the full field size, left-padded.
        size = (public.curve.key_size + 7) // 8
        return {
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": self.alg,
            "x": b64url_encode(_int_bytes(point.x, size)),
            "y": b64url_encode(_int_bytes(point.y, size)),
        }

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        der = self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4), not DER.
        return _int_bytes(r, 32) + _int_bytes(s, 32)


class FakeKeySet(KeyProvider):
    """Signing keys held in memory: publishes their JWKS and mints service account tokens.

    One key signs at a time; `rotate` adds a new signing key while earlier ones stay published
    until `retire`d, as kube-apiserver does with several --service-account-key-file values.
    As a KeyProvider it serves its own published keys, so `refresh` has nothing to fetch.
    """

    def __init__(
        self,
        algorithm: Algorithm = "RS256",
        *,
        issuer: str = ISSUER,
        api_audiences: Iterable[str] = (API_AUDIENCE,),
        clock: Clock = time.time,
        extend_expiration: bool = True,
    ) -> None:
        self.issuer = issuer
        self.api_audiences = frozenset(api_audiences)
        self.clock = clock
        self.extend_expiration = extend_expiration
        self._keys: dict[str, SigningKey] = {}
        self._published: list[str] = []
        first = SigningKey.generate(algorithm)
        self._keys[first.kid] = first
        self._published.append(first.kid)
        self._signing_kid = first.kid

    # --- key management -------------------------------------------------------------------

    @property
    def signing_kid(self) -> str:
        """The kid of the key that signs new tokens."""
        return self._signing_kid

    @property
    def published_kids(self) -> tuple[str, ...]:
        """Kids in the public JWKS, oldest first."""
        return tuple(self._published)

    def signing_key(self, kid: str | None = None) -> SigningKey:
        """The private key with this kid (published or not), default the current signer."""
        found = self._keys.get(kid or self._signing_kid)
        if found is None:
            raise KeyError(f"no key with kid {kid!r}")
        return found

    def generate_unpublished(self, algorithm: Algorithm = "RS256") -> str:
        """Make a key that can sign but is never published (tokens from an unknown signer)."""
        key = SigningKey.generate(algorithm)
        self._keys[key.kid] = key
        return key.kid

    def rotate(self, algorithm: Algorithm | None = None, *, retire_previous: bool = False) -> str:
        """Publish a new key and sign with it from now on; return its kid.

        The previous keys stay published (tokens they signed still verify) unless
        `retire_previous`.
        """
        key = SigningKey.generate(algorithm or self.signing_key().alg)
        previous = list(self._published)
        self._keys[key.kid] = key
        self._published.append(key.kid)
        self._signing_kid = key.kid
        if retire_previous:
            for kid in previous:
                self.retire(kid)
        return key.kid

    def retire(self, kid: str) -> None:
        """Stop publishing `kid`; tokens it signed no longer verify. The signer cannot retire."""
        if kid == self._signing_kid:
            raise ValueError("the current signing key cannot be retired; rotate first")
        if kid not in self._published:
            raise KeyError(f"kid {kid!r} is not published")
        self._published.remove(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS as GET /openid/v1/jwks returns it."""
        return {"keys": [self._keys[kid].public_jwk() for kid in self._published]}

    def algorithms(self) -> list[str]:
        """Sorted distinct algorithms of the published keys (discovery's signing algs)."""
        return sorted({self._keys[kid].alg for kid in self._published})

    # --- KeyProvider ----------------------------------------------------------------------

    async def get_key(self, kid: str) -> PublicJwk:
        if kid not in self._published:
            await self.refresh()
        if kid not in self._published:
            raise UnknownKey(f"no published key has kid {kid!r}")
        return _public_jwk(self._keys[kid].public_jwk())

    async def refresh(self) -> None:
        # The keys live here: there is nothing to fetch, and always at least the signer.
        return None

    def known_kids(self) -> frozenset[str]:
        return frozenset(self._published)

    # --- tokens ---------------------------------------------------------------------------

    def sign(
        self,
        claims: Mapping[str, Any],
        header_overrides: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        """Sign arbitrary claims with the key `key` (default: the signer) as a compact JWS.

        The header is kube-apiserver's `{"alg", "kid"}` (go-jose adds no `typ`); an override
        whose value is None removes that member. The signature always uses the key's own
        algorithm, whatever the header then claims.
        """
        signing_key = self.signing_key(key)
        header: dict[str, Any] = {"alg": signing_key.alg, "kid": signing_key.kid}
        for name, value in (header_overrides or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        signing_input = ".".join(map(b64url_encode, (_json(header), _json(claims)))).encode()
        return f"{signing_input.decode('ascii')}.{b64url_encode(signing_key.sign(signing_input))}"

    def is_extended(
        self, audiences: Iterable[str], expiration_seconds: int, *, bound_to_pod: bool
    ) -> bool:
        """Whether kube-apiserver would extend this request to a year.

        pkg/registry/core/serviceaccount/storage/token.go: only pod-bound requests of exactly
        3607 s whose audiences are all API audiences, when --service-account-extend-token-
        expiration is on (the default).
        """
        auds = list(audiences)
        return (
            self.extend_expiration
            and bound_to_pod
            and expiration_seconds == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
            and bool(auds)
            and self.api_audiences.issuperset(auds)
        )

    def claims(
        self,
        *,
        namespace: str,
        service_account: str,
        service_account_uid: str,
        **options: Unpack[TokenOptions],
    ) -> dict[str, Any]:
        """The claims kube-apiserver's TokenRequest would put in this token.

        pkg/serviceaccount/claims.go Claims(): `iat` = `nbf` = now, `jti` a UUID, the
        `kubernetes.io` claim with one binding object (a pod-bound token also names its node),
        and `warnafter` only on an extended token.
        """
        audiences, issued_at = options.get("audiences"), options.get("issued_at")
        expiration_seconds = options.get("expiration_seconds", 3600)
        pod, node, secret = options.get("pod"), options.get("node"), options.get("secret")
        auds = list(audiences) if audiences is not None else sorted(self.api_audiences)
        if secret is not None and (pod is not None or node is not None):
            raise ValueError("a token can only be bound to one object type")
        now = int(issued_at if issued_at is not None else self.clock())
        extended = self.is_extended(auds, expiration_seconds, bound_to_pod=pod is not None)
        lifetime = EXPIRATION_EXTENSION_SECONDS if extended else expiration_seconds
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": _ref(ObjectRef(service_account, service_account_uid)),
        }
        if pod is not None:
            private["pod"] = _ref(pod)
        if secret is not None:
            private["secret"] = _ref(secret)
        if node is not None:
            # A node-bound token, or the node a pod-bound token's pod runs on (the
            # ServiceAccountTokenPodNodeInfo behaviour, on by default since 1.30).
            private["node"] = _ref(node)
        if extended:
            private["warnafter"] = now + expiration_seconds
        return {
            "aud": auds,
            "exp": now + lifetime,
            "iat": now,
            "iss": self.issuer,
            "jti": options.get("jti") or str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
        }

    def mint(
        self,
        *,
        namespace: str = "default",
        service_account: str = "default",
        service_account_uid: str | None = None,
        key: str | None = None,
        **options: Unpack[TokenOptions],
    ) -> str:
        """A signed token shaped exactly like one from kube-apiserver's TokenRequest."""
        claims = self.claims(
            namespace=namespace,
            service_account=service_account,
            service_account_uid=service_account_uid or str(uuid.uuid4()),
            **options,
        )
        return self.sign(claims, key=key)


def _ref(ref: ObjectRef) -> dict[str, str]:
    # claims.go `ref` has `json:"name,omitempty"` and `json:"uid,omitempty"`.
    return {name: value for name, value in (("name", ref.name), ("uid", ref.uid)) if value}


def _public_jwk(data: Mapping[str, str]) -> PublicJwk:
    return PublicJwk(
        kty=data["kty"],
        kid=data["kid"],
        alg=data.get("alg"),
        use=data.get("use"),
        n=data.get("n"),
        e=data.get("e"),
        crv=data.get("crv"),
        x=data.get("x"),
        y=data.get("y"),
    )
