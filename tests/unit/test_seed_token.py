"""The seed's sample token (from a Docker Desktop cluster) decodes to the expected identity."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from domain.claims import decode_claims
from domain.rules import Expectations, validate_claims

SEED_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InRfM2lXUmxFMS01STFhYXhNbjlLbkQ5dEJFcDI5OXFRRG83aldpeTRzT0EifQ."
    "eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjLmNsdXN0ZXIubG9jYWwiXSwiZXhwIjoxODAzMDE2"
    "NDU1LCJpYXQiOjE3NzE0ODA0NTUsImlzcyI6Imh0dHBzOi8va3ViZXJuZXRlcy5kZWZhdWx0LnN2Yy5jbHVzdGVyLmxv"
    "Y2FsIiwianRpIjoiZGQ1ZjFkNTEtNjUyNi00ODE4LWEwOWYtOGRhYWYwYWEwYzczIiwia3ViZXJuZXRlcy5pbyI6eyJu"
    "YW1lc3BhY2UiOiJkZWZhdWx0Iiwibm9kZSI6eyJuYW1lIjoiZGVza3RvcC13b3JrZXIiLCJ1aWQiOiIwZWY1YzZmZS0x"
    "ODE5LTQ2YjMtOGY4Yy04YTU3ZjkyZTE5ZjkifSwicG9kIjp7Im5hbWUiOiJiZS02YzdiNjZmN2Q4LWc5dmw0IiwidWlk"
    "IjoiYzM5OWJiMDktODA3NC00NDgyLTljYTEtMDk2M2EzZmQyM2FkIn0sInNlcnZpY2VhY2NvdW50Ijp7Im5hbWUiOiJk"
    "ZWZhdWx0IiwidWlkIjoiNThiMjJlZmEtODc0Yy00OGIxLTkzN2YtMGY3MGY4ZTRlM2M5In0sIndhcm5hZnRlciI6MTc3"
    "MTQ4NDA2Mn0sIm5iZiI6MTc3MTQ4MDQ1NSwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmRlZmF1bHQ6ZGVmYXVs"
    "dCJ9."
    "oQidELueCwm3sfjAWVrI92dO8sRy8noVIzbMJeTMGH7MLLVAV9HL3WGSHJlwhoiKUgPvLqbEGVzspVtOoQZjGwNIKbCC"
    "esXkev0DuIH7y5nQ7XPVOeUwLyIUr_ptMVqw_JZ1tcI-BPJGjb_Y8onf9q6_AVNRPOYOPFEYiXd1Z2pbaoZYQg21O7ez"
    "dvePWcvpifYOGFWsSVuCHd8wrGeiEgN3jWOwgfk4Hae6Bq084ttZgZ1E7nLTcOqN6w5sA1Nj031tt8-hmr1V_JkLTRul"
    "4cDjkmk9TjohBY45rxl9kpBE9tdJhLzhTxX3thw9r-mRxpTWtQTfFeTzgvz0qJTD0w"
)
ISSUER = "https://kubernetes.default.svc.cluster.local"
NOW = datetime(2026, 11, 28, tzinfo=UTC).timestamp()


def _payload(token: str) -> bytes:
    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_seed_token_claims_decode_to_its_identity() -> None:
    claims = decode_claims(_payload(SEED_TOKEN))
    identity = validate_claims(claims, Expectations.of([ISSUER], [ISSUER]), NOW)
    assert identity.subject == "system:serviceaccount:default:default"
    assert identity.namespace == "default"
    assert identity.service_account == "default"
    assert identity.service_account_uid == "58b22efa-874c-48b1-937f-0f70f8e4e3c9"
    assert identity.pod == "be-6c7b66f7d8-g9vl4"
    assert identity.pod_uid == "c399bb09-8074-4482-9ca1-0963a3fd23ad"
    assert identity.node == "desktop-worker"
    assert identity.issuer == ISSUER
    assert identity.audiences == (ISSUER,)
    assert identity.expires_at == 1803016455
    assert identity.stale is True


def test_seed_token_shows_the_extended_expiration() -> None:
    claims = decode_claims(_payload(SEED_TOKEN))
    assert claims.exp is not None and claims.iat is not None and claims.kubernetes is not None
    assert claims.exp - claims.iat == 365 * 86400
    assert claims.kubernetes.warnafter is not None
    assert claims.kubernetes.warnafter - claims.iat == 3607
    assert claims.nbf == claims.iat
