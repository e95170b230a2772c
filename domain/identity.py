"""The verified service-account identity handed to the application."""

from __future__ import annotations

import msgspec

__all__ = ["SUBJECT_PREFIX", "Identity"]

SUBJECT_PREFIX = "system:serviceaccount:"


# Only strings and numbers inside, so never part of a cycle: with gc=False the collector does
# not walk the thousands a verified cache holds.
class Identity(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who called: a service account, where it runs, and what the token said about itself."""

    subject: str
    namespace: str
    service_account: str
    service_account_uid: str | None = None
    pod: str | None = None
    pod_uid: str | None = None
    node: str | None = None
    issuer: str
    audiences: tuple[str, ...] = ()
    expires_at: int | None = None
    stale: bool = False
    warn_after: float | None = None
    """`kubernetes.io.warnafter`: past it the same token is reported stale."""
    key_id: str | None = None
    """The `kid` the token names: the key its signature was verified with."""
