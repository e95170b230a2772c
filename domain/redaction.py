"""No credential in a line of text: what looks like a token is redacted before it is shown."""

from __future__ import annotations

import re

__all__ = ["scrub"]

# Compact JWS: three base64url segments, the first a JSON header ("eyJ" is base64url of '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
# A credential-looking run (16+ token68 characters) after a Bearer scheme, so prose such as
# "the Bearer scheme" survives; and Authorization header values in whatever quoting.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9._~+/=-]{16,}")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*(?:b?['\"])?)[^'\"\r\n]+")


def scrub(text: str) -> str:
    """Replace anything shaped like a JWT, a Bearer credential or an Authorization value."""
    # Each pattern needs its literal ("eyJ", "bearer", "authorization"); most strings have none.
    # Under re.IGNORECASE a dotless "\u0131" also matches "i", which str.lower() leaves as it is.
    lowered = text.lower()
    if not ("eyj" in lowered or "bearer" in lowered or "authorization" in lowered) and (
        "\u0131" not in lowered
    ):
        return text
    text = _JWT.sub("[redacted-jwt]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _AUTHORIZATION.sub(r"\1[redacted]", text)
