"""Public keys from a JWKS file (KSA_JWKS_FILE), for verification outside a cluster."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from domain.errors import KeysUnavailable, UnknownKey
from domain.jwks import parse_jwks
from domain.ports import KeyProvider, PublicJwk

__all__ = ["MAX_JWKS_FILE_BYTES", "StaticJwksFile"]

logger = logging.getLogger(__name__)

MAX_JWKS_FILE_BYTES = 1024 * 1024
_FileIdentity = tuple[str, int, int, int, int]


class StaticJwksFile(KeyProvider):
    """Keys read from a file (e.g. `kubectl get --raw /openid/v1/jwks > jwks.json`).

    Read on first use; an unknown kid re-reads the file only if it changed (path, mtime, size),
    so made-up kids cost a `stat`, not a parse. A file that later breaks keeps the last keys.
    """

    __slots__ = ("_identity", "_keys", "_kids", "_last_error", "_path", "loads")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._keys: dict[str, PublicJwk] = {}
        self._kids: frozenset[str] = frozenset()
        self._identity: _FileIdentity | None = None
        self._last_error: str | None = None
        self.loads = 0
        """How many times the file was read and parsed (for tests and metrics)."""

    @property
    def path(self) -> Path:
        return self._path

    async def get_key(self, kid: str) -> PublicJwk:
        """Return the key with this kid; re-reads a changed file once; raises UnknownKey or
        KeysUnavailable."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        self._load(force=not self._keys)
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKey(f"no key with kid {kid!r} in the JWKS file {self._path}")
        return key

    async def refresh(self) -> None:
        """Read the file again; raises KeysUnavailable if that fails and no keys are held."""
        self._load(force=True)

    def known_kids(self) -> frozenset[str]:
        """The kids read so far, without any I/O."""
        return self._kids

    def _load(self, *, force: bool) -> None:
        try:
            identity = self._identify()
            if not force and identity == self._identity:
                return
            with open(identity[0], "rb") as handle:
                document = handle.read(MAX_JWKS_FILE_BYTES + 1)
            if len(document) > MAX_JWKS_FILE_BYTES:
                raise ValueError(f"the file is larger than {MAX_JWKS_FILE_BYTES} bytes")
            keys, skipped = parse_jwks(document)
        except OSError as exc:
            self._failed(exc.strerror or type(exc).__name__)
            return
        except ValueError as exc:
            self._failed(str(exc))
            return
        self.loads += 1
        self._identity = identity
        self._keys = {key.kid: key for key in keys}
        self._kids = frozenset(self._keys)
        self._last_error = None
        if skipped:
            logger.info("JWKS file %s: skipped %d unusable entries", self._path, skipped)

    def _identify(self) -> _FileIdentity:
        resolved = os.path.realpath(self._path, strict=True)
        stat = os.stat(resolved)
        return resolved, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _failed(self, reason: str) -> None:
        detail = f"JWKS file {self._path} cannot be used: {reason}"
        if not self._keys:
            raise KeysUnavailable(detail)
        if reason != self._last_error:
            logger.warning("%s; keeping the %d keys read before", detail, len(self._keys))
        self._last_error = reason
