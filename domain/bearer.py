"""The Bearer scheme: the token of an Authorization header, and the challenge of a 401."""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.claims import JWT_MAX_BYTES
from domain.errors import AuthError, Malformed, MissingToken

__all__ = ["bearer_challenge", "bearer_token"]

# RFC 9110 §5.6.2 tchar: what an auth-scheme is made of.
_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no quote, no backslash).
_UNSAFE_IN_QUOTED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# A sane header is ~1 KiB; this bounds what we even look at (the server bounds the request).
_MAX_AUTHORIZATION_BYTES = JWT_MAX_BYTES + 64

_AUTHORIZATION_LENGTH = len(b"authorization")


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The Bearer token of the request's single Authorization header (ASGI header pairs).

    The scheme is case-insensitive (RFC 7235 §2.1). A missing header or another scheme is
    MissingToken (RFC 6750 §3.1: no error code for a request without Bearer credentials).
    The token's shape is the verifier's to check (`domain.jws.parse_compact`, Malformed).

    Raises:
        MissingToken, Malformed.
    """
    raw: bytes | None = None
    for name, value in headers:
        # ASGI servers lowercase header names; lower() anyway, but only for names that can match.
        if len(name) == _AUTHORIZATION_LENGTH and name.lower() == b"authorization":
            if raw is not None:
                raise Malformed("more than one Authorization header")
            raw = value
    if raw is None:
        raise MissingToken("no Authorization header; send `Bearer`, a space, then the token")
    if len(raw) > _MAX_AUTHORIZATION_BYTES:
        raise Malformed(f"the Authorization header is longer than {_MAX_AUTHORIZATION_BYTES} bytes")
    try:
        # RFC 9110 §5.5: field values are ASCII in practice; obs-text is never a token.
        text = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        raise Malformed("the Authorization header is not ASCII") from None
    if text[:7].lower() == "bearer ":
        # The usual case, `Bearer <token>`: the scheme is a whole tchar run followed by a space.
        rest = text[6:]
    else:
        scheme_match = _SCHEME.match(text)
        scheme = scheme_match.group(0) if scheme_match else ""
        if scheme.lower() != "bearer":
            raise MissingToken("the Authorization scheme is not Bearer")
        rest = text[len(scheme) :]
    if not rest:
        raise MissingToken("no token after the `Bearer` scheme")
    # RFC 7235 §2.1: credentials = auth-scheme [ 1*SP token68 ]: spaces only, no tab.
    if not rest.startswith(" "):
        raise Malformed("the scheme `Bearer` must be followed by a space, then the token")
    token = rest.lstrip(" ")
    if not token:
        raise MissingToken("no token after the `Bearer` scheme")
    if len(token) > JWT_MAX_BYTES:
        raise Malformed(f"the token is longer than {JWT_MAX_BYTES} bytes")
    return token


def bearer_challenge(realm: str, rejected: AuthError, description: str) -> str:
    """The WWW-Authenticate value of a 401 (RFC 6750 §3), `description` being safe to show."""
    challenge = f'Bearer realm="{realm}"'
    # RFC 6750 §3.1: no error code when the request carried no Bearer credentials at all.
    if not isinstance(rejected, MissingToken):
        challenge += f', error="invalid_token", error_description="{_quoted(description)}"'
    return challenge


def _quoted(text: str) -> str:
    return _UNSAFE_IN_QUOTED.sub("?", text)[:200]
