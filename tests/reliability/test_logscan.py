"""The log scan finds a leaked token or signature, and is not fooled by redacted lines."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.jws import SigningKey, compact
from tests.reliability.logscan import SecretLedger


def test_scan_finds_a_token_and_a_lone_signature(tmp_path: Path) -> None:
    key = SigningKey.rsa()
    token = compact({"alg": "RS256", "kid": key.kid}, {"sub": "x"}, key)
    other = compact({"alg": "RS256", "kid": key.kid}, {"sub": "y"}, key)
    unsigned = compact({"alg": "none"}, {"sub": "system:serviceaccount:a:b" * 2}, None)
    ledger = SecretLedger()
    ledger.add_tokens([token, other, unsigned])
    log = tmp_path / "app.log"
    log.write_text(
        f'{{"msg": "request", "auth": "Bearer {token}"}}\n'
        '{"msg": "fine", "token": "[redacted-jwt]"}\n'
        f"signature={other.split('.')[2]}\n"
        f"unsigned {unsigned}\n"
    )
    leaks = ledger.scan([log, tmp_path / "missing.log"])
    assert [(leak.line_number, leak.what) for leak in leaks] == [
        (1, "token (signature)"),
        (3, "token (signature)"),
        (4, "token (payload)"),
    ]


def test_scan_of_clean_logs_is_empty(tmp_path: Path) -> None:
    key = SigningKey.ec()
    token = compact({"alg": "ES256", "kid": key.kid}, {"sub": "x"}, key)
    ledger = SecretLedger()
    ledger.add_token(token)
    log = tmp_path / "app.log"
    # The header and payload alone are no secret; only the signature (or whole token) is.
    log.write_text(f"kid={key.kid} header={token.split('.')[0]} status=401\n")
    assert ledger.scan([log]) == []
    assert len(ledger) == 1
