"""An in-memory TokenSource: the token is whatever the test (or caller) last set."""

from __future__ import annotations

from domain.errors import TokenUnavailable
from domain.ports import TokenSource

__all__ = ["InMemoryTokenSource"]


class InMemoryTokenSource(TokenSource):
    """Holds one token in memory; `token = None` makes it unavailable."""

    __slots__ = ("token",)

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def current_token(self) -> str:
        """Return the token last set; raises TokenUnavailable when there is none."""
        if not self.token:
            raise TokenUnavailable("no service account token has been set")
        return self.token
