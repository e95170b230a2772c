"""In-process costs of one validation, side by side with the floor (bare RSA verify + parse)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import http.server
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.fake_keyset import API_AUDIENCE, ISSUER, FakeKeySet
from domain.claims import ObjectRef
from domain.rules import Expectations

__all__ = ["MicroResult", "mint_tokens", "run_micro"]

SyncCase = Callable[[str], object]
AsyncCase = Callable[[str], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class MicroResult:
    """Per case: median ns per validation, and the median of its per-repeat ratio to the floor.

    The ratio is taken within each repeat (the cases ran back to back on the same tokens), so
    load from other processes that shifts a whole repeat cancels out of it.
    """

    ns: dict[str, float]
    to_floor: dict[str, float]
    samples: int
    repeats: int


def mint_tokens(keyset: FakeKeySet, count: int) -> list[str]:
    """Distinct pod-bound tokens shaped like kube-apiserver's (each has its own jti)."""
    return [
        keyset.mint(
            namespace="default",
            service_account="be-sa",
            pod=ObjectRef("be-7d9f8", "4a1f0c3e-5b2d-4c8e-9f6a-1b2c3d4e5f60"),
            node=ObjectRef("devcluster-node", "0ef5c6fe-1819-46b3-8f8c-8a57f92e19f9"),
            expiration_seconds=3600,
        )
        for _ in range(count)
    ]


@contextlib.contextmanager
def _serve_jwks(jwks: dict[str, Any]) -> Iterator[str]:
    """A JWKS on a loopback HTTP port for PyJWKClient (it only takes http and https URLs)."""
    body = json.dumps(jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/openid/v1/jwks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _floor_case(public_key: rsa.RSAPublicKey) -> SyncCase:
    pkcs1 = padding.PKCS1v15()
    sha256 = hashes.SHA256()
    decode = msgspec.json.decode

    def floor(token: str) -> object:
        # The least any verifier must do: split, base64url-decode, verify, parse the payload.
        head, payload, signature = token.split(".")
        public_key.verify(_b64decode(signature), f"{head}.{payload}".encode(), pkcs1, sha256)
        return decode(_b64decode(payload))

    return floor


def _pyjwt_cases(jwk: dict[str, Any], jwks_url: str) -> dict[str, SyncCase]:
    import jwt

    key = jwt.PyJWK(jwk).key
    # PyJWKClient fetches the JWKS once and caches the set (300 s); what remains per call is
    # header parsing, the cache lookup and key selection, as in the seed.
    client = jwt.PyJWKClient(jwks_url)

    def pyjwt_decode(token: str) -> object:
        return jwt.decode(token, key, algorithms=["RS256"], audience=API_AUDIENCE, issuer=ISSUER)

    def pyjwt_jwks_client(token: str) -> object:
        signing_key = client.get_signing_key_from_jwt(token)
        return jwt.decode(
            token, signing_key.key, algorithms=["RS256"], audience=API_AUDIENCE, issuer=ISSUER
        )

    return {"pyjwt": pyjwt_decode, "pyjwt_jwks_client": pyjwt_jwks_client}


def _joserfc_case(jwk: dict[str, Any]) -> SyncCase:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.import_key(jwk)

    def joserfc_decode(token: str) -> object:
        decoded = jwt.decode(token, key, algorithms=["RS256"])
        # A registry per call: it freezes `now` when built (house style).
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=60,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": API_AUDIENCE},
            exp={"essential": True},
            sub={"essential": True},
        )
        registry.validate(decoded.claims)
        return decoded

    return joserfc_decode


def _time_sync(case: SyncCase, tokens: Sequence[str]) -> float:
    start = time.perf_counter_ns()
    for token in tokens:
        case(token)
    return (time.perf_counter_ns() - start) / len(tokens)


async def _time_async(case: AsyncCase, tokens: Sequence[str]) -> float:
    start = time.perf_counter_ns()
    for token in tokens:
        await case(token)
    return (time.perf_counter_ns() - start) / len(tokens)


async def _measure(
    sync_cases: dict[str, SyncCase],
    async_cases: dict[str, tuple[AsyncCase, bool]],
    tokens: Sequence[str],
    hit_token: str,
    samples: int,
    repeats: int,
) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {name: [] for name in (*sync_cases, *async_cases)}
    for repeat in range(repeats):
        # Fresh tokens for every repeat: nothing can have seen them (first sight).
        batch = tokens[repeat * samples : (repeat + 1) * samples]
        # Cases interleaved in each repeat, so drift on the machine hits them all alike.
        gc.collect()
        gc.disable()
        try:
            for name, case in sync_cases.items():
                runs[name].append(_time_sync(case, batch))
            for name, (acase, reuse) in async_cases.items():
                runs[name].append(
                    await _time_async(acase, [hit_token] * samples if reuse else batch)
                )
        finally:
            gc.enable()
    return runs


def run_micro(samples: int = 200, repeats: int = 15) -> MicroResult:
    """Measure every case `repeats` times over `samples` tokens; medians of per-call means."""
    from adapters.jose_verifier import JoseVerifier
    from adapters.static_jwks_file import StaticJwksFile
    from adapters.verified_cache import CachingVerifier

    keyset = FakeKeySet("RS256")
    tokens = mint_tokens(keyset, samples * repeats)
    hit_token = mint_tokens(keyset, 1)[0]
    jwk = keyset.jwks()["keys"][0]
    public_key = keyset.signing_key().private_key.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    expectations = Expectations.of([ISSUER], [API_AUDIENCE])

    with _serve_jwks(keyset.jwks()) as jwks_url, tempfile.TemporaryDirectory() as tmp:
        # A production KeyProvider (a dict lookup per call, like the cluster one in steady
        # state); the fake rebuilds its JWK on every call, which is no cost of the verifier.
        jwks_file = Path(tmp, "jwks.json")
        jwks_file.write_text(json.dumps(keyset.jwks()))
        keys = StaticJwksFile(jwks_file)
        sync_cases: dict[str, SyncCase] = {
            "floor": _floor_case(public_key),
            **_pyjwt_cases(jwk, jwks_url),
            "joserfc": _joserfc_case(jwk),
        }
        jose = JoseVerifier(keys, expectations, time.time)
        cache = CachingVerifier(jose, time.time, keys)

        async def run() -> dict[str, list[float]]:
            await jose.verify(hit_token)  # key imported once, as in a warm service
            await cache.verify(hit_token)  # the hit token is now cached
            async_cases: dict[str, tuple[AsyncCase, bool]] = {
                "jose_first_sight": (jose.verify, False),
                "cache_hit": (cache.verify, True),
            }
            # Every case must accept these tokens, or it is timing an error path.
            for case in sync_cases.values():
                case(hit_token)
            return await _measure(sync_cases, async_cases, tokens, hit_token, samples, repeats)

        runs = asyncio.run(run())
    floor = runs["floor"]
    return MicroResult(
        ns={name: statistics.median(values) for name, values in runs.items()},
        to_floor={
            name: statistics.median(v / f for v, f in zip(values, floor, strict=True))
            for name, values in runs.items()
        },
        samples=samples,
        repeats=repeats,
    )
