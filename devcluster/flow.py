"""The seed's testing steps (and a few more) run against a live stack, one PASS/FAIL line each."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

import httpx

from devcluster.stack import BE2_APP, BE_APP, ClusterInfo, PodInfo
from domain.claims import Claims, Header, decode_claims
from domain.jws import b64url_decode, b64url_encode, parse_compact

__all__ = [
    "FlowTargets",
    "SeedFlow",
    "StepFailed",
    "StepResult",
    "render_step",
    "render_summary",
    "run_steps",
    "tamper_signature",
]

# Every line of the step output fits a terminal of this width.
COLUMNS = 80
# How long a step waits for something asynchronous (a token file re-read, a key refresh).
SETTLE_SECONDS = 10.0
POLL_SECONDS = 0.05


class StepFailed(Exception):
    """A step's expectation did not hold; the message is the figure shown (never a token)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    number: int
    title: str
    passed: bool
    figure: str
    millis: float


@dataclass(frozen=True, slots=True)
class FlowTargets:
    """What the flow talks to: be and be2 at their URLs, the cluster its cluster.json describes."""

    be_url: str
    be2_url: str
    cluster: ClusterInfo
    admin: Callable[[str, dict[str, Any]], dict[str, Any]]

    @property
    def be(self) -> PodInfo:
        """be's pod: the caller whose identity be2 must confirm."""
        return self.cluster.pod(BE_APP)

    @property
    def other(self) -> PodInfo:
        """be2's own pod: a valid service account that policy keeps out of /protected."""
        return self.cluster.pod(BE2_APP)


Step = tuple[str, Callable[[], str]]


def render_step(result: StepResult, total: int) -> str:
    """A step as it finishes: status, title and time, then its figure indented below.

    ```
    [ 4/11] PASS  be2 /validate-auth -> 200                                 4 ms
            200, authenticated=true, stale=false
    ```
    """
    number = f"[{result.number:>{len(str(total))}}/{total}] "
    head = f"{number}{'PASS' if result.passed else 'FAIL'}  "
    millis = f"{result.millis:.0f} ms"
    room = COLUMNS - len(head) - len(millis) - 2
    title = _clip(result.title, room)
    # Under the status, so a figure of up to 72 columns (an identity, a URL) stays one line.
    indent = " " * len(number)
    figure = textwrap.wrap(result.figure, COLUMNS, initial_indent=indent, subsequent_indent=indent)
    return "\n".join([f"{head}{title:<{room}}  {millis}", *figure])


def render_summary(results: Sequence[StepResult], total: int, seconds: float) -> str:
    """The closing line: `11 of 11 steps passed (4.2 s)`, naming failed and skipped steps."""
    passed = sum(r.passed for r in results)
    failed = [str(r.number) for r in results if not r.passed]
    parts = [f"{passed} of {total} steps passed"]
    if failed:
        parts.append(f"FAILED: {', '.join(failed)}")
    if len(results) < total:
        parts.append(f"{total - len(results)} not run")
    return f"{', '.join(parts)} ({seconds:.1f} s)"


def run_steps(
    steps: Sequence[Step],
    out: TextIO,
    first_number: int = 1,
    total: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[StepResult]:
    """Run each step in order, printing its line as soon as it finishes; never raises."""
    total = total if total is not None else first_number - 1 + len(steps)
    results: list[StepResult] = []
    for offset, (title, action) in enumerate(steps):
        started = clock()
        try:
            figure = action()
            passed = True
        except StepFailed as failure:
            figure, passed = str(failure), False
        except Exception as exc:  # a step must report, not crash the run
            figure, passed = f"{type(exc).__name__}: {_clip(str(exc), 160)}", False
        result = StepResult(first_number + offset, title, passed, figure, (clock() - started) * 1e3)
        results.append(result)
        print(render_step(result, total), file=out, flush=True)
    return results


def tamper_signature(token: str) -> str:
    """The token with one bit of its signature flipped (header and claims unchanged).

    The flip is in the first signature byte: flipping the last base64url character may only
    touch padding bits that decoders ignore, leaving the signature valid.
    """
    head, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[0] ^= 0x01
    return f"{head}.{payload}.{b64url_encode(bytes(raw))}"


def unverified(token: str) -> tuple[Header, Claims]:
    """Header and claims of a JWT, NOT verified (only to show and compare what we send)."""
    parsed = parse_compact(token)
    return parsed.header, decode_claims(parsed.payload)


class SeedFlow:
    """Steps 2.. of the demo: the seed's Postman flow, then authorization and rotations."""

    def __init__(self, targets: FlowTargets, client: httpx.Client) -> None:
        self._t = targets
        self._client = client
        self._token: str | None = None
        self._identity: dict[str, Any] | None = None

    # (title, method) in the order they run; the demo numbers them after "services started".
    STEPS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("GET be /get-jwt", "get_jwt"),
        ("token as Authorization: Bearer", "bearer"),
        ("be2 /validate-auth -> 200", "validate"),
        ("identity confirmed", "identity"),
        ("be -> be2 via /call-be2", "call_be2"),
        ("/protected allows be-sa", "protected_allowed"),
        ("/protected forbids be2-sa", "protected_forbidden"),
        ("tampered token rejected", "tampered"),
        ("signing-key rotation survived", "signing_key_rotation"),
        ("token-file rotation picked up", "token_file_rotation"),
    )

    def steps(self) -> list[Step]:
        return [(title, getattr(self, method)) for title, method in self.STEPS]

    # -- the seed's steps ------------------------------------------------------------------

    def get_jwt(self) -> str:
        response = self._client.get(f"{self._t.be_url}/get-jwt")
        body = _expect(response, 200)
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise StepFailed("200 but no token in the body")
        if body.get("subject") != self._t.be.subject:
            raise StepFailed(f"subject {body.get('subject')!r}, expected {self._t.be.subject}")
        if "no-store" not in response.headers.get("cache-control", ""):
            raise StepFailed("200 without Cache-Control: no-store")
        self._token = token
        claims = unverified(token)[1]
        now = time.time()
        # With --service-account-extend-token-expiration (the default) exp is a year away;
        # `warnafter` (iat + 3607 s) is when the kubelet refreshes it, the time that matters.
        times = [
            f"{label} in {_duration(moment - now)}"
            for label, moment in (
                ("exp", claims.exp),
                ("warnafter", claims.kubernetes.warnafter if claims.kubernetes else None),
            )
            if moment is not None
        ]
        return ", ".join([f"200, {len(token)}-byte token", *times])

    def bearer(self) -> str:
        header, claims = unverified(self._require_token())
        if header.kid is None:
            raise StepFailed(f"{header.alg} token without a kid")
        if claims.sub != self._t.be.subject:
            raise StepFailed(f"token sub {claims.sub!r}, expected {self._t.be.subject}")
        audiences = ",".join(claims.audiences)
        return f"{header.alg}, kid {header.kid[:8]}..., aud {audiences}"

    def validate(self) -> str:
        body = _expect(self._validate(self._require_token()), 200)
        if body.get("authenticated") is not True:
            raise StepFailed(f"200 but authenticated={body.get('authenticated')!r}")
        self._identity = body
        return f"200, authenticated=true, stale={str(body.get('stale')).lower()}"

    def identity(self) -> str:
        body = self._identity
        if body is None:
            raise StepFailed("no identity: step 'be2 /validate-auth' did not pass")
        expected = {
            "subject": self._t.be.subject,
            "namespace": self._t.be.namespace,
            "service_account": self._t.be.service_account,
            "pod": self._t.be.name,
            "issuer": self._t.cluster.issuer,
        }
        wrong = [
            f"{key}={body.get(key)!r}" for key, value in expected.items() if body.get(key) != value
        ]
        if wrong:
            raise StepFailed("identity differs: " + ", ".join(wrong))
        return f"{body['subject']} (pod {body['pod']}, node {body.get('node')})"

    # -- beyond the seed --------------------------------------------------------------------

    def call_be2(self) -> str:
        body = _expect(self._client.get(f"{self._t.be_url}/call-be2"), 200)
        be2 = body.get("be2")
        subject = be2.get("subject") if isinstance(be2, dict) else None
        if body.get("be2_status") != 200 or subject != self._t.be.subject:
            raise StepFailed(f"be2_status {body.get('be2_status')!r}, subject {subject!r}")
        return f"be2_status 200 as {subject}"

    def protected_allowed(self) -> str:
        response = self._client.get(
            f"{self._t.be2_url}/protected", headers=_bearer(self._require_token())
        )
        body = _expect(response, 200)
        if body.get("subject") != self._t.be.subject:
            raise StepFailed(f"200 but subject {body.get('subject')!r}")
        return f"200 for {self._t.be.subject}"

    def protected_forbidden(self) -> str:
        other = Path(self._t.other.token_file).read_text().strip()
        response = self._client.get(f"{self._t.be2_url}/protected", headers=_bearer(other))
        body = _expect(response, 403)
        if body.get("reason") != "forbidden":
            raise StepFailed(f"403 with reason {body.get('reason')!r}")
        return f"403 forbidden for {self._t.other.subject}"

    def tampered(self) -> str:
        response = self._validate(tamper_signature(self._require_token()))
        body = _expect(response, 401)
        if body.get("reason") != "bad_signature":
            raise StepFailed(f"401 with reason {body.get('reason')!r}, expected bad_signature")
        challenge = response.headers.get("www-authenticate", "")
        if not challenge.lower().startswith("bearer") or 'error="invalid_token"' not in challenge:
            raise StepFailed("401 bad_signature without a Bearer invalid_token challenge")
        return '401 bad_signature, WWW-Authenticate: Bearer error="invalid_token"'

    def signing_key_rotation(self) -> str:
        old_kid = unverified(self._require_token())[0].kid or ""
        answer = self._t.admin("/admin/signing-keys/rotate", {"retire_previous": True})
        new_kid = answer.get("kid")
        if not isinstance(new_kid, str) or new_kid == old_kid:
            raise StepFailed(f"rotation answered kid {new_kid!r}")
        # Tokens signed by the retired key die with it; the kubelet's next rotation (forced
        # here) brings tokens signed by the new key, which be2 has never seen.
        self._t.admin("/admin/tokens/rotate", {})
        token = self._await_new_token(lambda candidate: unverified(candidate)[0].kid == new_kid)
        _expect(self._validate(token), 200)
        return f"kid {old_kid[:8]}... -> {new_kid[:8]}... (old retired), new token 200"

    def token_file_rotation(self) -> str:
        old_jti = unverified(self._require_token())[1].jti
        self._t.admin("/admin/tokens/rotate", {})
        started = time.perf_counter()
        token = self._await_new_token(lambda candidate: unverified(candidate)[1].jti != old_jti)
        waited = (time.perf_counter() - started) * 1e3
        _expect(self._validate(token), 200)
        return f"new jti served {waited:.0f} ms after the kubelet rewrite, validated 200"

    # -- helpers --------------------------------------------------------------------------

    def _require_token(self) -> str:
        if self._token is None:
            raise StepFailed("no token: step 'GET be /get-jwt' did not pass")
        return self._token

    def _validate(self, token: str) -> httpx.Response:
        return self._client.get(f"{self._t.be2_url}/validate-auth", headers=_bearer(token))

    def _await_new_token(self, is_new: Callable[[str], bool]) -> str:
        """Poll be's /get-jwt (bounded) until it serves a token `is_new` accepts."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            body = _expect(self._client.get(f"{self._t.be_url}/get-jwt"), 200)
            token = body.get("token")
            if isinstance(token, str) and is_new(token):
                self._token = token
                return token
            if time.monotonic() >= deadline:
                raise StepFailed(f"be still serves the old token after {SETTLE_SECONDS:g} s")
            time.sleep(POLL_SECONDS)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON object of a response with `status`, or StepFailed naming status and reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != status:
        reason = body.get("reason") or body.get("error") if isinstance(body, dict) else None
        suffix = f" ({reason})" if reason else ""
        raise StepFailed(f"{response.status_code}{suffix}, expected {status}")
    if not isinstance(body, dict):
        raise StepFailed(f"{status} without a JSON object body")
    return body


def _duration(seconds: float) -> str:
    """A rough human duration: `42 s`, `60 min`, `5 h`, `365 d` (negative: `-3 s`)."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
