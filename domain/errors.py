"""Domain errors, each carrying a machine reason code (SPEC §4) and a human detail."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "REASONS",
    "AuthError",
    "BadAudience",
    "BadIssuer",
    "BadSignature",
    "BadSubject",
    "Expired",
    "Forbidden",
    "IssuedInFuture",
    "KeysUnavailable",
    "Malformed",
    "MissingToken",
    "NotYetValid",
    "ReviewUnavailable",
    "Revoked",
    "TokenUnavailable",
    "UnknownKey",
    "UnsupportedAlgorithm",
]


class AuthError(Exception):
    """Base of every domain error: `reason` is the stable machine code, `detail` the human text.

    The detail never contains a token or a signature: it is returned to callers and logged.
    """

    reason: ClassVar[str] = "error"
    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, detail={self.detail!r})"


class MissingToken(AuthError):
    reason = "missing_token"


class Malformed(AuthError):
    reason = "malformed"


class UnsupportedAlgorithm(AuthError):
    reason = "unsupported_algorithm"


class UnknownKey(AuthError):
    reason = "unknown_key"


class BadSignature(AuthError):
    reason = "bad_signature"


class Expired(AuthError):
    reason = "expired"


class NotYetValid(AuthError):
    reason = "not_yet_valid"


class IssuedInFuture(AuthError):
    reason = "issued_in_future"


class BadIssuer(AuthError):
    reason = "bad_issuer"


class BadAudience(AuthError):
    reason = "bad_audience"


class BadSubject(AuthError):
    reason = "bad_subject"


class Revoked(AuthError):
    reason = "revoked"


class Forbidden(AuthError):
    reason = "forbidden"


class KeysUnavailable(AuthError):
    reason = "keys_unavailable"


class ReviewUnavailable(AuthError):
    reason = "review_unavailable"


class TokenUnavailable(AuthError):
    """Our own token cannot be read (be's `/get-jwt`, be2's key fetches)."""

    reason = "token_unavailable"


REASONS: dict[str, type[AuthError]] = {
    cls.reason: cls
    for cls in (
        MissingToken,
        Malformed,
        UnsupportedAlgorithm,
        UnknownKey,
        BadSignature,
        Expired,
        NotYetValid,
        IssuedInFuture,
        BadIssuer,
        BadAudience,
        BadSubject,
        Revoked,
        Forbidden,
        KeysUnavailable,
        ReviewUnavailable,
        TokenUnavailable,
    )
}
