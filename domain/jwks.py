"""JWKS documents (RFC 7517): the signing keys a cluster publishes, read from JSON bytes."""

from __future__ import annotations

import msgspec

from domain.jws import SIGNING_ALGORITHMS
from domain.ports import PublicJwk

__all__ = ["parse_jwks"]

# The curves kube-apiserver signs with: any other EC key cannot verify one of its tokens.
_CURVES = frozenset(curve for _, curve in SIGNING_ALGORITHMS.values() if curve)


class _Jwks(msgspec.Struct):
    keys: list[msgspec.Raw]


_jwks_decoder = msgspec.json.Decoder(_Jwks)
_jwk_decoder = msgspec.json.Decoder(PublicJwk)


def parse_jwks(document: bytes) -> tuple[tuple[PublicJwk, ...], int]:
    """The signing keys of a JWKS document and how many entries were skipped.

    Keeps only keys with a `kid`, `use` absent or `sig`, and kty RSA (n, e) or EC (P-256/384/521,
    x, y), each with only the members of its type and its `alg`; the first of a repeated kid wins.

    Raises:
        ValueError: when the document is not a JWKS or holds no usable key.
    """
    try:
        raw_keys = _jwks_decoder.decode(document).keys
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise ValueError('not a JWKS (a JSON object with a "keys" list)') from None
    keys: dict[str, PublicJwk] = {}
    for raw in raw_keys:
        try:
            usable = _usable(_jwk_decoder.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            continue
        if usable is not None and usable.kid not in keys:
            keys[usable.kid] = usable
    if not keys:
        raise ValueError("the JWKS holds no usable signing key (RSA or EC, use sig, with kid)")
    return tuple(keys.values()), len(raw_keys) - len(keys)


def _usable(jwk: PublicJwk) -> PublicJwk | None:
    if not jwk.kid or jwk.use not in (None, "sig"):
        return None
    if jwk.kty == "RSA" and jwk.n and jwk.e:
        return PublicJwk(kty="RSA", kid=jwk.kid, alg=jwk.alg, use=jwk.use, n=jwk.n, e=jwk.e)
    if jwk.kty == "EC" and jwk.crv in _CURVES and jwk.x and jwk.y:
        return PublicJwk(
            kty="EC", kid=jwk.kid, alg=jwk.alg, use=jwk.use, crv=jwk.crv, x=jwk.x, y=jwk.y
        )
    return None
