"""The reports service: one route for allowed callers, one call to another service."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx
from litestar import Litestar, get

from adapters.httpx_auth import ServiceAccountTokenAuth
from entrypoints.plugin import AuthenticatedRequest, ServiceAccountAuth, require_subjects

__all__ = ["create_app"]


def create_app(environ: Mapping[str, str] = os.environ) -> Litestar:
    """The app, with its own REPORTS_* settings beside the KSA_* ones ksa-auth reads."""
    readers = environ.get("REPORTS_READERS", "system:serviceaccount:default:be-sa").split(",")
    upstream = environ.get("REPORTS_UPSTREAM_URL", "http://be2")
    # A projected token whose audience is the upstream service (a volume of its own).
    upstream_auth = ServiceAccountTokenAuth.from_file(
        environ.get("REPORTS_UPSTREAM_TOKEN_FILE"), origins=[upstream]
    )

    @get("/reports", guards=[require_subjects(readers)], sync_to_thread=False)
    def reports(request: AuthenticatedRequest) -> dict[str, str]:
        return {"reader": request.user.subject}

    @get("/upstream")
    async def upstream_status(request: AuthenticatedRequest) -> dict[str, object]:
        async with httpx.AsyncClient(
            auth=upstream_auth, follow_redirects=False, trust_env=False, timeout=5.0
        ) as client:
            response = await client.get(f"{upstream}/validate-auth")
        return {"caller": request.user.subject, "upstream_status": response.status_code}

    return Litestar(
        [reports, upstream_status], plugins=[ServiceAccountAuth.from_environment(environ)]
    )
