"""The KeyProvider contract: every adapter of the port passes the same behavioural suite.

To add an adapter, write an async context manager yielding a `KeyProviderCase` (the adapter,
plus hooks that change what its source publishes) and add it to `CASES`. What only a provider
that fetches over the network can get wrong (TLS, outages, origins, cooldown, max-age) is
tested against ClusterJwksKeyProvider and the devcluster at the end.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.cluster_jwks import (
    UNKNOWN_KID_INTERVAL_SECONDS,
    ClusterJwksConfig,
    ClusterJwksKeyProvider,
)
from adapters.fake_keyset import FakeKeySet
from adapters.jose_verifier import JoseVerifier
from adapters.kube_http import CaFileError, api_server_client
from adapters.memory_token_source import InMemoryTokenSource
from adapters.projected_token_file import ProjectedTokenFile
from adapters.static_jwks_file import StaticJwksFile
from domain.errors import KeysUnavailable, UnknownKey
from domain.ports import KeyProvider, PublicJwk, TokenSource
from domain.rules import Expectations
from tests.devcluster_harness import DevCluster, DevPod
from tests.helpers import write_foreign_ca

pytestmark = pytest.mark.anyio


@dataclass
class KeyProviderCase:
    """An adapter under test and the hooks a test uses to change its key source."""

    provider: KeyProvider
    # Publish a new signing key at the source (old ones stay published); return its kid.
    rotate: Callable[[], Awaitable[str]]
    # Stop publishing `kid` at the source.
    retire: Callable[[str], Awaitable[None]]
    # How many times the provider has fetched/read its source so far (None: nothing to fetch).
    fetches: Callable[[], int] | None = None


@asynccontextmanager
async def fake_keyset_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProviderCase]:
    keyset = FakeKeySet()

    async def rotate() -> str:
        return keyset.rotate()

    async def retire(kid: str) -> None:
        keyset.retire(kid)

    yield KeyProviderCase(provider=keyset, rotate=rotate, retire=retire)


@asynccontextmanager
async def fake_keyset_ec_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProviderCase]:
    keyset = FakeKeySet("ES256")

    async def rotate() -> str:
        return keyset.rotate()

    async def retire(kid: str) -> None:
        keyset.retire(kid)

    yield KeyProviderCase(provider=keyset, rotate=rotate, retire=retire)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@asynccontextmanager
async def static_jwks_file_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProviderCase]:
    # The file an operator saves with `kubectl get --raw /openid/v1/jwks`, edited in place.
    keyset = FakeKeySet()
    path = tmp_path / "jwks.json"
    _write_atomically(path, keyset.jwks())
    provider = StaticJwksFile(path)

    async def rotate() -> str:
        kid = keyset.rotate()
        _write_atomically(path, keyset.jwks())
        return kid

    async def retire(kid: str) -> None:
        keyset.retire(kid)
        _write_atomically(path, keyset.jwks())

    yield KeyProviderCase(provider, rotate, retire, fetches=lambda: provider.loads)


def _cluster_provider(
    cluster: DevCluster,
    *,
    clock: Callable[[], float] | None = None,
    token_source: TokenSource | None = None,
    client: httpx.AsyncClient | None = None,
    **config: Any,
) -> tuple[ClusterJwksKeyProvider, httpx.AsyncClient]:
    be2 = cluster.pod("be2")
    client = client or api_server_client(be2.ca_file)
    settings: dict[str, Any] = {
        "discovery_url": cluster.discovery_url,
        "issuers": frozenset({cluster.issuer}),
        **config,
    }
    provider = ClusterJwksKeyProvider(
        ClusterJwksConfig(**settings),
        client,
        token_source or ProjectedTokenFile(be2.token_file),
        *([clock] if clock else []),
    )
    return provider, client


@asynccontextmanager
async def cluster_jwks_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProviderCase]:
    cluster: DevCluster = request.getfixturevalue("devcluster")
    provider, client = _cluster_provider(cluster)
    await provider.start()

    async def rotate() -> str:
        kid: str = cluster.admin("/admin/signing-keys/rotate")["kid"]
        return kid

    async def retire(kid: str) -> None:
        cluster.admin("/admin/signing-keys/retire", {"kid": kid})
        # Re-sign the projected tokens, as they would be after a real key retirement: our own
        # token (which reads discovery and JWKS) must not be signed by a retired key.
        cluster.admin("/admin/tokens/rotate")

    try:
        yield KeyProviderCase(
            provider, rotate, retire, fetches=lambda: int(cluster.state()["jwks_requests"])
        )
    finally:
        await provider.close()
        await client.aclose()


CaseFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[KeyProviderCase]]
CASES: dict[str, CaseFactory] = {
    "fake_keyset": fake_keyset_case,
    "fake_keyset_es256": fake_keyset_ec_case,
    "static_jwks_file": static_jwks_file_case,
    "cluster_jwks": cluster_jwks_case,
}


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
async def key_provider_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProviderCase]:
    async with CASES[request.param](request, tmp_path) as case:
        yield case


def _b64_length(value: str | None) -> int:
    assert value is not None
    return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def _check_jwk(jwk: PublicJwk) -> None:
    assert isinstance(jwk, PublicJwk)
    assert jwk.kid
    assert jwk.use in (None, "sig")
    if jwk.kty == "RSA":
        assert jwk.alg in (None, "RS256")
        assert _b64_length(jwk.n) >= 256  # at least 2048 bits
        assert jwk.e
    else:
        assert jwk.kty == "EC"
        assert (jwk.crv, jwk.alg) in {("P-256", "ES256"), ("P-256", None)}
        assert _b64_length(jwk.x) == _b64_length(jwk.y) == 32


async def test_keys_are_public_signing_keys(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    keys = await _published(provider)
    assert keys
    for jwk in keys:
        _check_jwk(jwk)
    assert len({jwk.kid for jwk in keys}) == len(keys)


async def test_known_kids_are_the_keys_get_key_returns(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    kids = provider.known_kids()
    assert kids
    assert {(await provider.get_key(kid)).kid for kid in kids} == kids


async def test_get_key_returns_the_published_key(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    kid = await key_provider_case.rotate()
    await provider.refresh()
    published = await provider.get_key(kid)
    assert published.kid == kid
    _check_jwk(published)


async def test_unknown_kid_is_unknown_key(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    with pytest.raises(UnknownKey) as raised:
        await provider.get_key("no-such-kid")
    assert raised.value.reason == "unknown_key"


async def test_refresh_is_repeatable(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    first = provider.known_kids()
    await provider.refresh()
    await provider.refresh()
    assert provider.known_kids() == first


async def test_a_rotated_key_is_found_by_kid_and_the_old_one_kept(
    key_provider_case: KeyProviderCase,
) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    old = set(provider.known_kids())
    new = await key_provider_case.rotate()
    assert new not in old
    # No explicit refresh: an unknown kid makes the provider refresh once by itself.
    assert (await provider.get_key(new)).kid == new
    assert old | {new} == set(provider.known_kids())
    for kid in old:
        assert (await provider.get_key(kid)).kid == kid


async def test_a_retired_key_is_gone_after_refresh(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    old = set(provider.known_kids())
    new = await key_provider_case.rotate()
    for kid in old:
        await key_provider_case.retire(kid)
    await provider.refresh()
    assert provider.known_kids() == frozenset({new})
    for kid in old:
        with pytest.raises(UnknownKey):
            await provider.get_key(kid)


async def test_keys_carry_kid_and_alg(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    for jwk in await _published(provider):
        assert jwk.kid
        # kube-apiserver publishes `alg`; a provider must keep it, the verifier relies on it.
        assert jwk.alg in ("RS256", "ES256")


async def test_concurrent_lookups_of_a_rotated_kid_share_one_fetch(
    key_provider_case: KeyProviderCase,
) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    new = await key_provider_case.rotate()
    before = key_provider_case.fetches() if key_provider_case.fetches else 0
    found = await asyncio.gather(*(provider.get_key(new) for _ in range(200)))
    assert {jwk.kid for jwk in found} == {new}
    if key_provider_case.fetches is not None:
        assert key_provider_case.fetches() - before == 1


async def test_a_flood_of_made_up_kids_fetches_at_most_once(
    key_provider_case: KeyProviderCase,
) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    before = key_provider_case.fetches() if key_provider_case.fetches else 0

    async def lookup(kid: str) -> BaseException | PublicJwk:
        try:
            return await provider.get_key(kid)
        except UnknownKey as exc:
            return exc

    for wave in range(2):
        results = await asyncio.gather(*(lookup(f"made-up-{wave}-{i}") for i in range(200)))
        assert all(isinstance(r, UnknownKey) for r in results)
    if key_provider_case.fetches is not None:
        assert key_provider_case.fetches() - before <= 1


# --- ClusterJwksKeyProvider against the devcluster: what only a fetching provider can get wrong


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


async def eventually(probe: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Await until `probe()` is truthy (the event loop keeps running), within a bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := probe()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value


@pytest.fixture
def cluster(devcluster: DevCluster) -> Iterator[DevCluster]:
    """The module's devcluster, with key faults switched off again after each test."""
    yield devcluster
    devcluster.admin(
        "/admin/faults", {"keys": "ok", "delay_seconds": 0, "endpoints": ["discovery", "jwks"]}
    )


def _jwks_requests(cluster: DevCluster) -> int:
    return int(cluster.state()["jwks_requests"])


async def test_cluster_keys_are_the_published_ones_over_tls(cluster: DevCluster) -> None:
    provider, client = _cluster_provider(cluster)
    try:
        await provider.start()
        keys = await _published(provider)
        assert {k.kid for k in keys} == set(cluster.state()["published_kids"])
        assert all(k.alg == "RS256" and k.kty == "RSA" for k in keys)
        assert provider.fetch_outcomes["ok"] == 1
    finally:
        await provider.close()
        await client.aclose()


async def test_made_up_kids_fetch_exactly_once_per_cooldown(cluster: DevCluster) -> None:
    clock = FakeClock()
    provider, client = _cluster_provider(cluster, clock=clock, cooldown_seconds=30)
    try:
        await provider.start()
        before = _jwks_requests(cluster)
        flood = [provider.get_key(f"made-up-{i}") for i in range(200)]
        results = await asyncio.gather(*flood, return_exceptions=True)
        assert all(isinstance(r, UnknownKey) for r in results)
        assert _jwks_requests(cluster) == before + 1
        clock.now += 29
        with pytest.raises(UnknownKey):
            await provider.get_key("made-up-later")
        assert _jwks_requests(cluster) == before + 1, "inside the cooldown: no fetch"
        clock.now += 1
        with pytest.raises(UnknownKey):
            await provider.get_key("made-up-after-cooldown")
        assert _jwks_requests(cluster) == before + 2
        # Known kids never fetch.
        for kid in provider.known_kids():
            await provider.get_key(kid)
        assert _jwks_requests(cluster) == before + 2
    finally:
        await provider.close()
        await client.aclose()


def _made_up_kid(token: str, kid: str) -> str:
    """`token` under a header naming `kid` (the lookup fails before any signature check)."""
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    encoded = base64.urlsafe_b64encode(json.dumps({**header, "kid": kid}).encode())
    return ".".join([encoded.rstrip(b"=").decode(), *token.split(".")[1:]])


async def test_a_rotation_right_after_made_up_kids_is_accepted_within_the_interval(
    cluster: DevCluster,
) -> None:
    """The unknown-kid rule through the verifier, against an attacker who copies our issuer
    (so the issuer check lets the tokens through to the key lookup)."""
    clock = FakeClock()
    provider, client = _cluster_provider(cluster, clock=clock)
    verifier = JoseVerifier(provider, Expectations.of([cluster.issuer], ["be2"]), clock)
    impostor = FakeKeySet("ES256", issuer=cluster.issuer).mint(
        namespace="default", service_account="be-sa", audiences=["be2"]
    )
    try:
        await provider.start()
        before = _jwks_requests(cluster)
        for i in range(50):
            with pytest.raises(UnknownKey):
                await verifier.verify(_made_up_kid(impostor, f"made-up-{i}"))
        assert _jwks_requests(cluster) == before + 1
        # The cluster rotates right after: inside the interval the new kid is refused...
        cluster.admin("/admin/signing-keys/rotate")
        rotated = cluster.mint("be-sa", audiences=["be2"], pod=cluster.pod("be").name)
        with pytest.raises(UnknownKey):
            await verifier.verify(rotated)
        assert _jwks_requests(cluster) == before + 1
        # ...and accepted once it has passed, whatever the attacker sent before.
        clock.now += UNKNOWN_KID_INTERVAL_SECONDS
        assert (await verifier.verify(rotated)).service_account == "be-sa"
        assert _jwks_requests(cluster) == before + 2
        # The fetch-rate bound: a minute of made-up kids, ten a second, costs 60 / interval.
        for second in range(60):
            clock.now += 1
            for i in range(10):
                with pytest.raises(UnknownKey):
                    await verifier.verify(_made_up_kid(impostor, f"flood-{second}-{i}"))
        assert _jwks_requests(cluster) == before + 2 + int(60 // UNKNOWN_KID_INTERVAL_SECONDS)
    finally:
        await provider.close()
        await client.aclose()


@pytest.mark.parametrize("endpoint", ["discovery", "jwks"])
@pytest.mark.parametrize(
    "fault", ["outage", "garbage", "oversized", "malformed", "redirect", "slow"]
)
async def test_a_failed_refresh_keeps_the_last_keys(
    cluster: DevCluster, fault: str, endpoint: str
) -> None:
    provider, client = _cluster_provider(cluster, timeout_seconds=0.5)
    try:
        await provider.start()
        kids = provider.known_kids()
        assert kids
        cluster.admin(
            "/admin/faults",
            {
                "keys": fault,
                "delay_seconds": 2 if fault == "slow" else 0,
                "endpoints": [endpoint],
            },
        )
        await provider.refresh()  # no exception: keys are held
        assert provider.fetch_outcomes["error"] == 1
        assert provider.last_error is not None
        assert provider.last_error.startswith("JWKS" if endpoint == "jwks" else "discovery")
        assert provider.known_kids() == kids
        for kid in kids:
            assert (await provider.get_key(kid)).kid == kid
        cluster.admin("/admin/faults", {"keys": "ok", "delay_seconds": 0})
        await provider.refresh()
        assert provider.last_error is None
        assert provider.last_error is None
        assert provider.fetch_outcomes["ok"] == 2
    finally:
        await provider.close()
        await client.aclose()


async def test_stale_keys_serve_for_a_day_past_max_age_then_fail_closed(
    cluster: DevCluster,
) -> None:
    clock = FakeClock()
    provider, client = _cluster_provider(cluster, clock=clock)
    try:
        await provider.start()
        kid = next(iter(provider.known_kids()))
        cluster.admin("/admin/faults", {"keys": "outage"})
        # The devcluster sends max-age=3600, held to the refresh bound (300 s); past it,
        # refreshes fail and the keys go stale, then serve for a day.
        clock.now += provider.config.max_max_age_seconds + 86400 - 1
        await provider.refresh()
        assert (await provider.get_key(kid)).kid == kid
        clock.now += 2
        assert provider.known_kids() == frozenset()
        with pytest.raises(KeysUnavailable) as raised:
            await provider.get_key(kid)
        assert "503" in raised.value.detail
    finally:
        await provider.close()
        await client.aclose()


async def test_keys_refresh_in_the_background_before_max_age(cluster: DevCluster) -> None:
    clock = FakeClock()
    provider, client = _cluster_provider(cluster, clock=clock)
    try:
        await provider.start()
        before = _jwks_requests(cluster)
        # 80% of the max-age has passed (the devcluster's 3600 s, held to the 300 s bound),
        # and the jitter's latest draw on top of it.
        config = provider.config
        latest = config.refresh_at_fraction * (1 + config.refresh_jitter / 2)
        clock.now += latest * config.max_max_age_seconds + 1
        await eventually(lambda: provider.fetch_outcomes["ok"] >= 2, "a background refresh")
        assert _jwks_requests(cluster) == before + 1
    finally:
        await provider.close()
        await client.aclose()


class _RecordedNaps:
    """A background refresher's naps, recorded instead of slept (the next one never ends)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.Event().wait()


async def _first_nap(cluster: DevCluster, draw: float, clock: FakeClock) -> float:
    be2 = cluster.pod("be2")
    client = api_server_client(be2.ca_file)
    naps = _RecordedNaps()
    config = ClusterJwksConfig(discovery_url=cluster.discovery_url, issuers={cluster.issuer})
    token = ProjectedTokenFile(be2.token_file)
    provider = ClusterJwksKeyProvider(config, client, token, clock, nap=naps, uniform=lambda: draw)
    try:
        await provider.start()
        await eventually(lambda: naps.delays, "the refresher's first nap")
        return naps.delays[0]
    finally:
        await provider.close()
        await client.aclose()


@pytest.mark.parametrize(("draw", "fraction"), [(0.0, 0.72), (0.5, 0.8), (0.999999, 0.88)])
async def test_the_background_refresh_is_spread_over_a_fifth_of_its_interval(
    cluster: DevCluster, draw: float, fraction: float
) -> None:
    # Replicas started together (a rollout) would otherwise refresh together forever after:
    # 0.8 x the 300 s bound, give or take a tenth.
    delay = await _first_nap(cluster, draw, FakeClock())
    assert delay == pytest.approx(fraction * 300, abs=1e-3)


@pytest.mark.parametrize(("draw", "seconds"), [(0.0, 5.0), (0.999999, 2.5)])
async def test_a_retry_after_a_failed_fetch_waits_half_to_all_of_its_backoff(
    cluster: DevCluster, draw: float, seconds: float
) -> None:
    cluster.admin("/admin/faults", {"keys": "outage"})
    try:
        delay = await _first_nap(cluster, draw, FakeClock())
    finally:
        cluster.admin("/admin/faults", {"keys": "ok"})
    assert delay == pytest.approx(seconds, abs=1e-3)


async def test_stale_keys_are_served_while_a_refresh_runs_behind_them(
    cluster: DevCluster,
) -> None:
    clock = FakeClock()
    provider, client = _cluster_provider(cluster, clock=clock)
    try:
        await provider.refresh()  # loaded without start(): no background refresher
        kid = next(iter(provider.known_kids()))
        before = _jwks_requests(cluster)
        clock.now += 3600  # max-age reached
        assert (await provider.get_key(kid)).kid == kid  # served at once, not awaited
        await eventually(lambda: provider.fetch_outcomes["ok"] >= 2, "a refresh behind")
        assert _jwks_requests(cluster) == before + 1
        assert (await provider.get_key(kid)).kid == kid
        assert _jwks_requests(cluster) == before + 1, "fresh again: no more fetches"
    finally:
        await provider.close()
        await client.aclose()


async def test_never_loaded_keys_are_keys_unavailable(cluster: DevCluster) -> None:
    cluster.admin("/admin/faults", {"keys": "outage"})
    provider, client = _cluster_provider(cluster)
    try:
        await provider.start()
        with pytest.raises(KeysUnavailable) as raised:
            await provider.get_key("any")
        assert raised.value.reason == "keys_unavailable"
        assert "503" in raised.value.detail
        with pytest.raises(KeysUnavailable):
            await provider.refresh()
        assert provider.known_kids() == frozenset()
    finally:
        await provider.close()
        await client.aclose()


async def test_a_wrong_ca_fails_closed_and_logs_the_tls_reason(
    cluster: DevCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = api_server_client(write_foreign_ca(tmp_path / "other-ca.crt"))
    provider, _ = _cluster_provider(cluster, client=client)
    try:
        with caplog.at_level(logging.INFO):
            await provider.start()
            with pytest.raises(KeysUnavailable) as raised:
                await provider.get_key("any")
        assert "certificate verify failed" in raised.value.detail
        assert "certificate verify failed" in caplog.text
        assert cluster.pod("be2").token() not in caplog.text
        assert provider.fetch_outcomes["error"] == 1
    finally:
        await provider.close()
        await client.aclose()


def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaFileError) as raised:
        api_server_client(tmp_path / "ca.crt")
    assert str(tmp_path / "ca.crt") in str(raised.value)
    assert "No such file or directory" in str(raised.value)
    (tmp_path / "bad.crt").write_text("not a certificate")
    with pytest.raises(CaFileError, match="no usable PEM certificate"):
        api_server_client(tmp_path / "bad.crt")


async def test_an_issuer_mismatch_is_a_clear_error(cluster: DevCluster) -> None:
    # kubernetes.default.svc vs ...svc.cluster.local differs by distribution (kubeflow#3079).
    provider, client = _cluster_provider(
        cluster, issuers=frozenset({"https://kubernetes.default.svc"})
    )
    try:
        await provider.start()
        with pytest.raises(KeysUnavailable) as raised:
            await provider.get_key("any")
        assert cluster.issuer in raised.value.detail
        assert "KSA_ISSUER" in raised.value.detail
    finally:
        await provider.close()
        await client.aclose()


async def test_our_token_unavailable_is_keys_unavailable(cluster: DevCluster) -> None:
    provider, client = _cluster_provider(cluster, token_source=InMemoryTokenSource())
    try:
        await provider.start()
        with pytest.raises(KeysUnavailable, match="own token is unavailable"):
            await provider.get_key("any")
    finally:
        await provider.close()
        await client.aclose()


async def test_a_jwks_uri_on_another_origin_is_rebased_and_logged_once(
    cluster: DevCluster, caplog: pytest.LogCaptureFixture
) -> None:
    provider, client = _cluster_provider(cluster)
    try:
        with caplog.at_level(logging.INFO, logger="adapters.cluster_jwks"):
            await provider.start()
            await provider.refresh()
        rebased = [r.getMessage() for r in caplog.records if "jwks_uri" in r.getMessage()]
        assert len(rebased) == 1
        # The devcluster advertises an unreachable host, as real clusters often do.
        assert "https://apiserver.invalid:6443/openid/v1/jwks" in rebased[0]
        assert cluster.jwks_url in rebased[0]
        assert provider.known_kids()
    finally:
        await provider.close()
        await client.aclose()


@dataclass
class RecordingServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 that answers JSON by path and records what it got."""

    routes: dict[str, bytes]
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (x.partition(":") for x in lines[1:] if x)
            )
            self.requests.append((path, headers.get("authorization")))
            body = self.routes.get(path)
            status = "200 OK" if body is not None else "404 Not Found"
            payload = body or b"{}"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def recording_server(routes: dict[str, bytes]) -> AsyncIterator[RecordingServer]:
    recorder = RecordingServer(routes)
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()


def _published_jwks(cluster: DevCluster) -> bytes:
    with cluster.client() as client:
        response = client.get(
            "/openid/v1/jwks",
            headers={"Authorization": f"Bearer {cluster.pod('be2').token()}"},
        )
    response.raise_for_status()
    return response.content


async def test_a_jwks_url_on_another_origin_never_gets_our_token(cluster: DevCluster) -> None:
    async with recording_server({"/keys": _published_jwks(cluster)}) as elsewhere:
        provider, client = _cluster_provider(cluster, jwks_url=f"{elsewhere.origin}/keys")
        try:
            await provider.start()
            assert provider.known_kids() == frozenset(cluster.state()["published_kids"])
        finally:
            await provider.close()
            await client.aclose()
    assert elsewhere.requests == [("/keys", None)]


async def test_discovery_on_another_origin_never_gets_our_token(cluster: DevCluster) -> None:
    routes: dict[str, bytes] = {"/keys": _published_jwks(cluster)}
    async with recording_server(routes) as elsewhere:
        routes["/.well-known/openid-configuration"] = json.dumps(
            {"issuer": cluster.issuer, "jwks_uri": f"{elsewhere.origin}/keys"}
        ).encode()
        provider, client = _cluster_provider(
            cluster,
            discovery_url=f"{elsewhere.origin}/.well-known/openid-configuration",
            api_server=cluster.url,
        )
        try:
            await provider.start()
            assert provider.known_kids()
        finally:
            await provider.close()
            await client.aclose()
    assert [path for path, _ in elsewhere.requests] == [
        "/.well-known/openid-configuration",
        "/keys",
    ]
    assert all(authorization is None for _, authorization in elsewhere.requests)


async def test_a_redirect_to_another_origin_is_not_followed(cluster: DevCluster) -> None:
    cluster.admin("/admin/faults", {"keys": "redirect"})
    provider, client = _cluster_provider(cluster)
    try:
        await provider.start()
        with pytest.raises(KeysUnavailable, match="redirects are not followed"):
            await provider.get_key("any")
    finally:
        await provider.close()
        await client.aclose()
    state = cluster.state()
    assert state["redirect_target_requests"] == 0
    assert state["redirect_target_authorization"] == 0


async def _published(provider: KeyProvider) -> list[PublicJwk]:
    return [await provider.get_key(kid) for kid in sorted(provider.known_kids())]


async def test_a_retired_key_is_refused_within_the_refresh_bound(
    fresh_devcluster: DevCluster,
) -> None:
    # The devcluster says max-age=3600; the refresh bound (KSA_JWKS_REFRESH_SECONDS, 300 s)
    # caps it, so a key the cluster stopped publishing is dropped within it, not after 48 min.
    cluster = fresh_devcluster
    clock = FakeClock()
    be2 = cluster.pod("be2")
    provider, client = _cluster_provider(cluster, clock=clock, token_source=_EachRead(be2))
    try:
        await provider.start()
        [old] = provider.known_kids()
        new: str = cluster.admin("/admin/signing-keys/rotate")["kid"]
        cluster.admin("/admin/signing-keys/retire", {"kid": old})
        # be2's own token was signed by the retired key too: the kubelet replaces it.
        cluster.admin("/admin/tokens/rotate")
        assert old in provider.known_kids()  # nothing fetched yet: still trusted
        clock.now += provider.config.max_max_age_seconds
        await eventually(lambda: provider.known_kids() == {new}, "a refresh within the bound")
        with pytest.raises(UnknownKey):
            await provider.get_key(old)
    finally:
        await provider.close()
        await client.aclose()


class _EachRead(TokenSource):
    """The pod's token file, read on every call (the test moves the provider's clock only)."""

    def __init__(self, pod: DevPod) -> None:
        self._pod = pod

    def current_token(self) -> str:
        return self._pod.token()
