"""`ksa-auth decode` on the seed's sample token: UNVERIFIED header, claims, identity and times."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest

from domain.errors import Malformed
from entrypoints.cli import main
from entrypoints.token_commands import read_token, render_decode
from tests.unit.test_seed_token import SEED_TOKEN

# Between the seed token's warnafter (2026-02-19 06:54:22) and its exp (2027-02-19 05:54:15).
NOW = datetime(2026, 11, 28, tzinfo=UTC).timestamp()


def test_decode_marks_everything_unverified_and_shows_the_identity() -> None:
    report = render_decode(SEED_TOKEN, NOW)
    assert report.startswith("UNVERIFIED")
    assert "Header (UNVERIFIED):" in report
    assert "Claims (UNVERIFIED):" in report
    assert "Service account (UNVERIFIED):" in report
    assert '"kid": "t_3iWRlE1-5I1aaxMn9KnD9tBEp299qQDo7jWiy4sOA"' in report
    assert '"jti": "dd5f1d51-6526-4818-a09f-8daaf0aa0c73"' in report
    assert re.search(r"subject\s+system:serviceaccount:default:default", report)
    assert re.search(r"namespace\s+default", report)
    assert re.search(
        r"service account\s+default \(uid 58b22efa-874c-48b1-937f-0f70f8e4e3c9\)", report
    )
    assert re.search(r"pod\s+be-6c7b66f7d8-g9vl4 \(uid c399bb09-", report)
    assert re.search(r"node\s+desktop-worker", report)
    assert re.search(r"audiences\s+https://kubernetes.default.svc.cluster.local", report)


def test_decode_prints_times_in_utc_with_time_left_and_stale() -> None:
    report = render_decode(SEED_TOKEN, NOW)
    assert "now 2026-11-28 00:00:00 UTC" in report
    assert re.search(r"iat\s+2026-02-19 05:54:15 UTC  \(281d 18h ago\)", report)
    assert re.search(r"nbf\s+2026-02-19 05:54:15 UTC", report)
    assert re.search(r"warnafter\s+2026-02-19 06:54:22 UTC  \(.* ago\): stale", report)
    assert re.search(r"exp\s+2027-02-19 05:54:15 UTC  \(83d 5h left\)", report)
    assert re.search(r"lifetime\s+365d 0h", report)


def test_decode_before_warnafter_says_fresh_and_after_exp_says_expired() -> None:
    fresh = render_decode(SEED_TOKEN, datetime(2026, 2, 19, 6, 0, tzinfo=UTC).timestamp())
    assert re.search(r"warnafter .*\(in 54m 22s\): fresh", fresh)
    expired = render_decode(SEED_TOKEN, datetime(2027, 2, 20, 5, 54, 15, tzinfo=UTC).timestamp())
    assert re.search(r"exp\s+2027-02-19 05:54:15 UTC  \(expired 1d 0h ago\)", expired)


def test_decode_never_prints_the_signature() -> None:
    signature = SEED_TOKEN.split(".")[2]
    report = render_decode(SEED_TOKEN, NOW)
    assert signature not in report
    assert "Signature: 256 bytes (not shown, not verified)" in report


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "!!!.???.x", "e30.bm90IGpzb24.", "W10.e30.", "x" * 20000],
)
def test_decode_rejects_what_is_not_a_jwt(token: str) -> None:
    with pytest.raises(Malformed):
        render_decode(token, NOW)


def test_decode_of_a_jwt_that_is_not_a_service_account_token() -> None:
    # {"alg":"none"} . {"sub":"x"} — JSON, but no issuer and no kubernetes.io claim.
    report = render_decode("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", NOW)
    assert "Not a Kubernetes service account token" in report


def test_read_token_from_stdin_drops_a_bearer_prefix() -> None:
    assert read_token("-", io.StringIO(f"Bearer {SEED_TOKEN}\n")) == SEED_TOKEN
    assert read_token(f"  {SEED_TOKEN} ", io.StringIO("")) == SEED_TOKEN


def test_cli_decode_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", SEED_TOKEN]) == 0
    out = capsys.readouterr().out
    assert "system:serviceaccount:default:default" in out
    assert SEED_TOKEN.split(".")[2] not in out
    assert main(["decode", "not-a-token"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("malformed: ")
    assert captured.err.count("\n") == 1
