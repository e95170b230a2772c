"""The cluster administrator's static token (kube's --token-auth-file) before service accounts."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from devcluster.tokenreview import Authenticator, Review, bearer_token

__all__ = ["ADMIN_USER", "AUTHENTICATED", "MASTERS", "RequestAuthenticator", "StaticToken"]

# kubeadm's and kind's administrator: a user in the group RBAC lets do anything.
ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
# k8s.io/apiserver authenticatedGroupAdder: every authenticated user is also in this group.
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class StaticToken:
    """One line of a token file: the token, and the user it stands for."""

    username: str
    groups: tuple[str, ...]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.token.encode(), token.encode())


@dataclass(frozen=True)
class RequestAuthenticator:
    """The union kube-apiserver asks for every request and for TokenReview: the token file
    first, then the service account authenticator."""

    static: tuple[StaticToken, ...]
    service_accounts: Authenticator

    @property
    def api_audiences(self) -> tuple[str, ...]:
        return self.service_accounts.api_audiences

    def authenticate(self, token: str, audiences: Sequence[str] | None = None) -> Review:
        """Who `token` is for `audiences` (default: the API audiences)."""
        for entry in self.static:
            if entry.matches(token):
                # pkg/authentication/authenticator/audagnostic.go: a token file knows no
                # audiences, so it answers only for requested ones the API server is among.
                granted = self._api_audiences_among(audiences)
                if granted:
                    return self._review(entry, granted)
        return self.service_accounts.authenticate(token, audiences)

    def authenticate_header(self, authorization: str | None) -> Review:
        """authenticator/request/bearertoken: `Bearer <token>` (scheme case-insensitive)."""
        token = bearer_token(authorization)
        return self.authenticate(token) if token else Review(False, "")

    def _api_audiences_among(self, audiences: Sequence[str] | None) -> tuple[str, ...]:
        if not audiences:
            return self.api_audiences
        return tuple(a for a in self.api_audiences if a in audiences)

    @staticmethod
    def _review(entry: StaticToken, audiences: tuple[str, ...]) -> Review:
        groups = entry.groups if AUTHENTICATED in entry.groups else (*entry.groups, AUTHENTICATED)
        return Review(True, username=entry.username, groups=groups, audiences=audiences)
