"""The kid is derived exactly as Kubernetes does: base64url(SHA-256(DER SubjectPublicKeyInfo))."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from adapters.fake_keyset import key_id

# Generated once with openssl; the expected kids were computed independently with
#   openssl pkey -pubin -in pub.pem -outform DER | openssl dgst -sha256 -binary \
#     | basenc --base64url | tr -d '='
RSA_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwo9ffg3/pvKVm5n3b5sr
T75SbjJG3/wM9Ieofji24FwbshlDrvOLfs9/y92G6AVF/LYJy4KwC/A9V+TdS1W+
ojdTMuEGXtK15NrU44p9yBhes6hID/+eKGHD3reFXNMuXIj4cGE8JWTQq1KpWbxG
Njx4GuRo9rcnADWr3V3fv0tCZSy1HzqfW8yOaivvmyCEpDTpUwbLGl3mC3qFe+ey
yYIzi3bpHozGcOlU8S2vN2Qix0fCm1BD3Ls5ydjIntKqStEhzQJFc6Syq3+kU6YY
I+/dNDnLvlqnVWRIUx46bTADwhT44sT+ABlLAVnRONYdBzCOP7KIgmizcvkTE2pv
tQIDAQAB
-----END PUBLIC KEY-----
"""
RSA_KID = "L_XeFMu1JXi_8-yEloB5uRKwOFRP_BlFoz1uSYVZjeo"

EC_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJ4u7jkfKwWb9OA83h+v3j/tD87QQ
XtS4nx267fksmGI9tf0KUfkFTBM5QDxXklF0BEZo14mHew6zD8gPfcefOQ==
-----END PUBLIC KEY-----
"""
EC_KID = "7_eHMQDhYuelQ_aAAcyD6pGoRDW65GuovZnuspS4d68"


@pytest.mark.parametrize(
    ("pem", "expected"),
    [(RSA_PUBLIC_PEM, RSA_KID), (EC_PUBLIC_PEM, EC_KID)],
    ids=["rsa-2048", "ec-p256"],
)
def test_kid_is_base64url_sha256_of_der_spki(pem: bytes, expected: str) -> None:
    public_key = load_pem_public_key(pem)
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    kid = key_id(public_key)
    assert kid == expected
    assert len(kid) == 43
    assert "=" not in kid
