"""The seed's approach, as a typical copy would write it: FastAPI + PyJWT PyJWKClient per request.

Settings (environment): SEED_JWKS_URL, SEED_CA_FILE (trust for the JWKS URL), SEED_TOKEN_FILE
(our SA token: the API server's JWKS needs an authenticated caller), SEED_ISSUER, SEED_AUDIENCE.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import jwt
from fastapi import FastAPI, Header, HTTPException


def create_app() -> FastAPI:
    """The app factory (`--factory` for uvicorn and granian)."""
    jwks_url = os.environ["SEED_JWKS_URL"]
    issuer = os.environ["SEED_ISSUER"]
    audience = os.environ["SEED_AUDIENCE"]
    context = ssl.create_default_context(cafile=os.environ["SEED_CA_FILE"])
    headers = {}
    token_file = os.environ.get("SEED_TOKEN_FILE")
    if token_file:
        headers["Authorization"] = "Bearer " + Path(token_file).read_text().strip()
    # PyJWT's defaults: the JWK set is cached for 300 s, so steady state fetches nothing.
    jwks_client = jwt.PyJWKClient(jwks_url, headers=headers, ssl_context=context)

    app = FastAPI()

    @app.get("/validate-auth")
    async def validate_auth(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(status_code=401, detail="Missing token")
        token = authorization.split(" ", 1)[1]
        try:
            signing_key = jwks_client.get_signing_key_from_jwt(token)
            payload = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=audience,
                issuer=issuer,
            )
        except jwt.PyJWTError as exc:
            raise HTTPException(status_code=401, detail=f"Invalid token: {exc}") from None
        return {"authenticated": True, "subject": payload["sub"], "claims": payload}

    return app
