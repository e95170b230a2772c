"""The KeyProvider contract: every adapter of the port passes the same behavioural suite.

To add an adapter, write an async context manager yielding a `KeyProviderCase` (the adapter,
plus hooks that change what its source publishes) and add it to `CASES`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.fake_keyset import FakeKeySet
from domain.errors import UnknownKey
from domain.ports import KeyProvider, PublicJwk

pytestmark = pytest.mark.anyio


@dataclass
class KeyProviderCase:
    """An adapter under test and the hooks a test uses to change its key source."""

    provider: KeyProvider
    # Publish a new signing key at the source (old ones stay published); return its kid.
    rotate: Callable[[], Awaitable[str]]
    # Stop publishing `kid` at the source.
    retire: Callable[[str], Awaitable[None]]


@asynccontextmanager
async def fake_keyset_case(tmp_path: Path) -> AsyncIterator[KeyProviderCase]:
    keyset = FakeKeySet()

    async def rotate() -> str:
        return keyset.rotate()

    async def retire(kid: str) -> None:
        keyset.retire(kid)

    yield KeyProviderCase(provider=keyset, rotate=rotate, retire=retire)


@asynccontextmanager
async def fake_keyset_ec_case(tmp_path: Path) -> AsyncIterator[KeyProviderCase]:
    keyset = FakeKeySet("ES256")

    async def rotate() -> str:
        return keyset.rotate()

    async def retire(kid: str) -> None:
        keyset.retire(kid)

    yield KeyProviderCase(provider=keyset, rotate=rotate, retire=retire)


CASES: dict[str, Callable[[Path], AbstractAsyncContextManager[KeyProviderCase]]] = {
    "fake_keyset": fake_keyset_case,
    "fake_keyset_es256": fake_keyset_ec_case,
}


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
async def key_provider_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KeyProviderCase]:
    async with CASES[request.param](tmp_path) as case:
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
    keys = await provider.keys()
    assert keys
    for jwk in keys:
        _check_jwk(jwk)
    assert len({jwk.kid for jwk in keys}) == len(keys)


async def test_known_kids_match_keys_without_io(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    assert provider.known_kids() == frozenset(jwk.kid for jwk in await provider.keys())


async def test_get_key_returns_the_published_key(key_provider_case: KeyProviderCase) -> None:
    provider = key_provider_case.provider
    await provider.refresh()
    for jwk in await provider.keys():
        assert await provider.get_key(jwk.kid) == jwk


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
