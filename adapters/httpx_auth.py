"""The client face: an httpx Auth sending our projected service account token to chosen origins."""

from __future__ import annotations

from collections.abc import Generator, Iterable

import httpx

from adapters.kube_http import origin_of
from adapters.projected_token_file import DEFAULT_TOKEN_FILE, ProjectedTokenFile
from domain.ports import TokenSource

__all__ = ["ServiceAccountTokenAuth"]


class ServiceAccountTokenAuth(httpx.Auth):
    """Adds `Authorization: Bearer <current token>` to requests for the given origins only.

    ```
    auth = ServiceAccountTokenAuth.from_file(origins=["http://be2"])
    async with httpx.AsyncClient(auth=auth, follow_redirects=False, trust_env=False) as client:
        await client.get("http://be2/validate-auth")
    ```

    The token is read for every request, so a token the kubelet rotated is sent from the next
    request on; a request to any other origin goes out without it. Raises TokenUnavailable
    (from the request call) when the token cannot be read.
    """

    def __init__(self, token_source: TokenSource, origins: Iterable[str]) -> None:
        self._token_source = token_source
        self._origins = frozenset(origin_of(origin) for origin in origins)
        if not self._origins:
            raise ValueError("name at least one origin the token may be sent to")

    @classmethod
    def from_file(
        cls, path: str | None = None, *, origins: Iterable[str]
    ) -> ServiceAccountTokenAuth:
        """Read the token from the kubelet's projected file (KSA_TOKEN_FILE's default path)."""
        return cls(ProjectedTokenFile(path or DEFAULT_TOKEN_FILE), origins)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(request.url) in self._origins:
            request.headers["Authorization"] = f"Bearer {self._token_source.current_token()}"
        yield request
