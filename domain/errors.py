"""Domain errors: a machine reason code and a human detail, under three bases by outcome."""

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
    "InternalError",
    "IssuedInFuture",
    "KeysUnavailable",
    "Malformed",
    "MissingToken",
    "NotYetValid",
    "Rejected",
    "ReviewUnavailable",
    "Revoked",
    "TokenUnavailable",
    "Unavailable",
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


class Rejected(AuthError):
    """The token is not accepted: the caller must bring another one (HTTP 401)."""


class Forbidden(AuthError):
    """The token is valid, but its subject may not use this route (HTTP 403)."""

    reason = "forbidden"


class Unavailable(AuthError):
    """No decision could be made now; the same request may succeed later (HTTP 503)."""


class MissingToken(Rejected):
    reason = "missing_token"


class Malformed(Rejected):
    reason = "malformed"


class UnsupportedAlgorithm(Rejected):
    reason = "unsupported_algorithm"


class UnknownKey(Rejected):
    reason = "unknown_key"


class BadSignature(Rejected):
    reason = "bad_signature"


class Expired(Rejected):
    reason = "expired"


class NotYetValid(Rejected):
    reason = "not_yet_valid"


class IssuedInFuture(Rejected):
    reason = "issued_in_future"


class BadIssuer(Rejected):
    reason = "bad_issuer"


class BadAudience(Rejected):
    reason = "bad_audience"


class BadSubject(Rejected):
    reason = "bad_subject"


class Revoked(Rejected):
    reason = "revoked"


class KeysUnavailable(Unavailable):
    reason = "keys_unavailable"


class ReviewUnavailable(Unavailable):
    reason = "review_unavailable"


class TokenUnavailable(Unavailable):
    """Our own token cannot be read (be's `/get-jwt`, be2's key fetches)."""

    reason = "token_unavailable"


class InternalError(Unavailable):
    """An unexpected fault of ours: reported as unavailable, never as a server error."""

    reason = "internal_error"


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
        InternalError,
    )
}
