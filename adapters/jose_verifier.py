"""Local verification: JWS signature with joserfc against the cluster's keys, then domain rules."""

from __future__ import annotations

import base64
import binascii
import re
import time

import msgspec
from joserfc import jwk, jws
from joserfc.errors import BadSignatureError, JoseError, UnsupportedAlgorithmError

from domain.claims import JWT_MAX_BYTES, Claims, decode_claims, decode_header
from domain.errors import BadIssuer, BadSignature, Malformed, UnknownKey, UnsupportedAlgorithm
from domain.identity import Identity
from domain.ports import Clock, KeyProvider, PublicJwk, Verifier
from domain.rules import Expectations, validate_claims

__all__ = ["ALGORITHMS", "JoseVerifier"]

# What kube-apiserver signs with (pkg/serviceaccount/jwt.go signerFromKey): RS256 for RSA keys,
# ES256/384/512 by curve for EC keys. Never `none`, never HMAC: an HS256 token "signed" with
# the public key as the secret is the classic confusion attack.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
_ALLOWED = ", ".join(ALGORITHMS)
_ALGORITHM_MODELS = {name: jws.JWSRegistry.algorithms[name] for name in ALGORITHMS}
# The signature may be empty (an `alg: none` token): the algorithm check then names it.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Keys imported into joserfc, by kid; more than this many distinct kids means churn: start over.
_MAX_IMPORTED_KEYS = 64


def _b64decode(segment: str) -> bytes:
    # The caller has checked the alphabet; only padding is missing (RFC 7515 §2).
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class JoseVerifier(Verifier):
    """Verifies a bound service account token the way kube-apiserver does, without asking it."""

    __slots__ = ("_clock", "_expectations", "_imported", "_keys")

    def __init__(
        self, key_provider: KeyProvider, expectations: Expectations, clock: Clock = time.time
    ) -> None:
        self._keys = key_provider
        self._expectations = expectations
        self._clock = clock
        self._imported: dict[str, tuple[PublicJwk, jwk.Key]] = {}

    async def verify(self, token: str) -> Identity:
        """Return the caller's identity; raises an AuthError subclass naming the reason."""
        if len(token) > JWT_MAX_BYTES:
            raise Malformed(f"token is longer than {JWT_MAX_BYTES} bytes")
        if _COMPACT_JWS.fullmatch(token) is None:
            raise Malformed("token is not a compact JWS (three base64url segments)")
        header_segment, payload_segment, _ = token.split(".")
        try:
            raw_header = _b64decode(header_segment)
            payload = _b64decode(payload_segment)
        except (binascii.Error, ValueError):
            raise Malformed("token segments are not valid base64url") from None
        header = decode_header(raw_header)
        alg = header.alg
        if alg not in ALGORITHMS:
            raise UnsupportedAlgorithm(f"algorithm {alg!r} is not accepted ({_ALLOWED})")
        if header.crit is not None:
            raise Malformed("token header lists critical extensions, which are not supported")
        if not header.kid:
            raise Malformed("token header has no `kid`")
        # Untrusted until the signature verifies; peeked at first, as kube-apiserver does
        # (pkg/serviceaccount/jwt.go hasCorrectIssuer): a token from another issuer is not
        # ours to check, whatever key it names. Claims that do not decode are reported after
        # the key and signature checks, in the order.
        try:
            claims: Claims | None = decode_claims(payload)
        except Malformed:
            claims = None
        if claims is not None and claims.iss not in self._expectations.issuers:
            raise BadIssuer(f"issuer {claims.iss!r} is not one of the accepted issuers")
        public = await self._keys.get_key(header.kid)
        key = self._import(public, alg)
        self._check_signature(token, raw_header, payload, key, alg)
        if claims is None:
            claims = decode_claims(payload)
        return validate_claims(claims, self._expectations, self._clock())

    def _import(self, public: PublicJwk, alg: str) -> jwk.Key:
        kty, curve = ALGORITHMS[alg]
        if public.kty != kty or public.crv != curve:
            raise UnsupportedAlgorithm(
                f"algorithm {alg!r} does not fit key {public.kid!r} "
                f"({public.kty}{' ' + public.crv if public.crv else ''})"
            )
        if public.alg is not None and public.alg != alg:
            raise UnsupportedAlgorithm(
                f"algorithm {alg!r} does not fit key {public.kid!r}, published for {public.alg!r}"
            )
        cached = self._imported.get(public.kid)
        if cached is not None and (cached[0] is public or cached[0] == public):
            return cached[1]
        try:
            key = jwk.import_key(msgspec.to_builtins(public))
        except (JoseError, ValueError, TypeError) as exc:
            raise UnknownKey(
                f"published key {public.kid!r} cannot be used: {type(exc).__name__}"
            ) from None
        if len(self._imported) >= _MAX_IMPORTED_KEYS:
            self._imported.clear()
        self._imported[public.kid] = (public, key)
        return key

    @staticmethod
    def _check_signature(
        token: str, raw_header: bytes, payload: bytes, key: jwk.Key, alg: str
    ) -> None:
        # joserfc's algorithm object verifies; validate_compact would build a registry and parse
        # and check the header again on every call, all of which verify() has done (issue 7: it
        # was ~30 % of a first-sight verification).
        model = _ALGORITHM_MODELS[alg]
        signing_input, _, signature_segment = token.rpartition(".")
        try:
            model.check_key(key)  # use "sig", key type and key alg, as validate_compact does
            try:
                signature = _b64decode(signature_segment)
            except (binascii.Error, ValueError):
                valid = False  # as joserfc: a signature that does not decode does not verify
            else:
                valid = model.verify(signing_input.encode("ascii"), signature, key)
        except BadSignatureError:
            valid = False
        except UnsupportedAlgorithmError:
            raise UnsupportedAlgorithm(f"algorithm {alg!r} is not accepted ({_ALLOWED})") from None
        except (JoseError, ValueError, TypeError) as exc:
            detail = f"token header or signature is not valid: {type(exc).__name__}"
            raise Malformed(detail) from None
        if not valid:
            raise BadSignature("token signature does not verify with the published key")
