"""Swagger UI at /schema/swagger, with its assets served from the package itself (works offline)."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

__all__ = ["ASSETS", "ASSETS_PATH", "assets_router", "swagger_plugin"]

# swagger-ui-dist as published on npm, copied by tools/swagger-ui/vendor.py (see SOURCE.json
# there for the version); the page names no other origin, so it renders wherever the service
# answers, without internet access.
ASSETS = Path(__file__).resolve().parent / "swagger_ui"
# Under /schema: outside authentication, like the page itself.
ASSETS_PATH = "/schema/swagger-ui"


def swagger_plugin() -> SwaggerRenderPlugin:
    """The Swagger UI page at /schema and /schema/swagger, loading only ASSETS_PATH."""
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def assets_router() -> Router:
    """Serves the vendored files; a day's caching, as they change only with a release."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS],
        name="swagger-ui",
        cache_control=CacheControlHeader(max_age=86400),
        include_in_schema=False,
    )
