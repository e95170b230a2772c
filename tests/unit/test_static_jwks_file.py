"""StaticJwksFile edge cases: missing, broken, oversized and changing files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from adapters.fake_keyset import FakeKeySet
from adapters.static_jwks_file import StaticJwksFile
from domain.errors import KeysUnavailable, UnknownKey


def _write(path: Path, content: str | bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    os.replace(tmp, path)


def test_a_missing_file_is_keys_unavailable_naming_path_and_reason(tmp_path: Path) -> None:
    provider = StaticJwksFile(tmp_path / "jwks.json")
    assert provider.known_kids() == frozenset()
    with pytest.raises(KeysUnavailable) as raised:
        asyncio.run(provider.get_key("k"))
    assert str(tmp_path / "jwks.json") in raised.value.detail
    assert "No such file or directory" in raised.value.detail


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "not a JWKS"),
        ("<html>", "not a JWKS"),
        ('{"keys": []}', "no usable signing key"),
        ('{"keys": [{"kty": "RSA", "kid": "a", "use": "enc", "n": "AQAB", "e": "AQAB"}]}',
         "no usable signing key"),
        ('{"keys": [' + " " * (1024 * 1024) + "]}", "larger than 1048576 bytes"),
    ],
)  # fmt: skip
def test_an_unusable_file_is_keys_unavailable(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "jwks.json"
    _write(path, content)
    with pytest.raises(KeysUnavailable, match=why):
        asyncio.run(StaticJwksFile(path).refresh())


def test_a_file_broken_after_loading_keeps_its_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keyset = FakeKeySet()
    path = tmp_path / "jwks.json"
    _write(path, json.dumps(keyset.jwks()))
    provider = StaticJwksFile(path)
    asyncio.run(provider.refresh())
    _write(path, "garbage")
    with caplog.at_level(logging.WARNING, logger="adapters.static_jwks_file"):
        asyncio.run(provider.refresh())
    assert provider.known_kids() == {keyset.signing_kid}
    assert asyncio.run(provider.get_key(keyset.signing_kid)).kid == keyset.signing_kid
    assert "keeping the 1 keys read before" in caplog.text


def test_unknown_kids_reread_only_a_changed_file(tmp_path: Path) -> None:
    keyset = FakeKeySet()
    path = tmp_path / "jwks.json"
    _write(path, json.dumps(keyset.jwks()))
    provider = StaticJwksFile(path)
    asyncio.run(provider.refresh())
    assert provider.loads == 1
    for i in range(50):
        with pytest.raises(UnknownKey):
            asyncio.run(provider.get_key(f"made-up-{i}"))
    assert provider.loads == 1
    new = keyset.rotate()
    _write(path, json.dumps(keyset.jwks()))
    assert asyncio.run(provider.get_key(new)).kid == new
    assert provider.loads == 2
