"""Local verification: JWS signature with joserfc against the cluster's keys, then domain rules."""

from __future__ import annotations

import time

import msgspec
from joserfc import jwk, jws
from joserfc.errors import BadSignatureError, JoseError, UnsupportedAlgorithmError

from domain.claims import Claims, decode_claims
from domain.errors import BadIssuer, BadSignature, Malformed, UnknownKey, UnsupportedAlgorithm
from domain.identity import Identity
from domain.jws import SIGNING_ALGORITHMS, b64url_decode, parse_compact, require_signing_algorithm
from domain.ports import Clock, KeyProvider, PublicJwk, Verifier
from domain.rules import Expectations, validate_claims

__all__ = ["JoseVerifier"]

_ALGORITHM_MODELS = {name: jws.JWSRegistry.algorithms[name] for name in SIGNING_ALGORITHMS}
# Keys imported into joserfc, by kid; more than this many distinct kids means churn: start over.
_MAX_IMPORTED_KEYS = 64


class JoseVerifier(Verifier):
    """Verifies a bound service account token the way kube-apiserver does, without asking it."""

    __slots__ = ("_clock", "_expectations", "_imported", "_keys")

    def __init__(
        self, key_provider: KeyProvider, expectations: Expectations, clock: Clock = time.time
    ) -> None:
        self._keys = key_provider
        self._expectations = expectations
        self._clock = clock
        self._imported: dict[str, tuple[PublicJwk, str, jwk.Key]] = {}

    async def verify(self, token: str) -> Identity:
        """Return the caller's identity; raises an AuthError subclass naming the reason."""
        parts = parse_compact(token)
        header = parts.header
        kty, curve = require_signing_algorithm(header.alg)
        if header.crit is not None:
            raise Malformed("token header lists critical extensions, which are not supported")
        if not header.kid:
            raise Malformed("token header has no `kid`")
        # Untrusted until the signature verifies; peeked at first, as kube-apiserver does
        # (pkg/serviceaccount/jwt.go hasCorrectIssuer): a token from another issuer is not
        # ours to check, whatever key it names. Claims that do not decode are reported after
        # the key and signature checks, in the order.
        try:
            claims: Claims | None = decode_claims(parts.payload)
        except Malformed:
            claims = None
        if claims is not None and claims.iss not in self._expectations.issuers:
            raise BadIssuer(f"issuer {claims.iss!r} is not one of the accepted issuers")
        public = await self._keys.get_key(header.kid)
        key = self._import(public, header.alg, kty, curve)
        _check_signature(parts.signing_input, parts.signature, key, header.alg)
        if claims is None:
            claims = decode_claims(parts.payload)
        identity = validate_claims(claims, self._expectations, self._clock())
        return msgspec.structs.replace(identity, key_id=public.kid)

    def _import(self, public: PublicJwk, alg: str, kty: str, curve: str | None) -> jwk.Key:
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
        if cached is not None and cached[1] == alg and (cached[0] is public or cached[0] == public):
            return cached[2]
        try:
            key = jwk.import_key(msgspec.to_builtins(public))
        except (JoseError, ValueError, TypeError) as exc:
            raise UnknownKey(
                f"published key {public.kid!r} cannot be used: {type(exc).__name__}"
            ) from None
        _check_key(key, alg)
        if len(self._imported) >= _MAX_IMPORTED_KEYS:
            self._imported.clear()
        self._imported[public.kid] = (public, alg, key)
        return key


def _check_key(key: jwk.Key, alg: str) -> None:
    # Use "sig", key type and key alg, as joserfc's validate_compact checks them; once per key
    # and algorithm, not per token.
    try:
        _ALGORITHM_MODELS[alg].check_key(key)
    except UnsupportedAlgorithmError:
        raise UnsupportedAlgorithm(f"algorithm {alg!r} does not fit the published key") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise Malformed(f"token header or signature is not valid: {type(exc).__name__}") from None


def _check_signature(signing_input: str, signature_segment: str, key: jwk.Key, alg: str) -> None:
    # joserfc's algorithm object verifies; validate_compact would build a registry and parse and
    # check the header again, all of which verify() has done.
    try:
        signature = b64url_decode(signature_segment)
    except Malformed:
        valid = False  # as joserfc: a signature that does not decode does not verify
    else:
        try:
            valid = _ALGORITHM_MODELS[alg].verify(signing_input.encode("ascii"), signature, key)
        except BadSignatureError:
            valid = False
        except (JoseError, ValueError, TypeError) as exc:
            raise Malformed(
                f"token header or signature is not valid: {type(exc).__name__}"
            ) from None
    if not valid:
        raise BadSignature("token signature does not verify with the published key")
