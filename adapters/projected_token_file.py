"""Our own service account token, read from the kubelet's projected volume as it rotates."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import msgspec

from domain.claims import JWT_MAX_BYTES, decode_claims
from domain.errors import Malformed, TokenUnavailable
from domain.jws import parse_compact
from domain.ports import Clock, TokenSource

__all__ = [
    "DEFAULT_TOKEN_FILE",
    "RECHECK_SECONDS",
    "SERVICE_ACCOUNT_DIRECTORY",
    "ProjectedTokenFile",
]

logger = logging.getLogger(__name__)

# The kubelet mounts these in every pod that automounts its service account token.
SERVICE_ACCOUNT_DIRECTORY = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TOKEN_FILE = f"{SERVICE_ACCOUNT_DIRECTORY}/token"

# client-go re-reads the file at least every minute (transport/token_source.go); the kubelet
# swaps `..data` at 80% of the TTL, so a 10 s bound keeps us at most 10 s behind even when the
# identity check is fooled (same size, coarse mtime on some filesystems).
RECHECK_SECONDS = 10.0

_FileIdentity = tuple[str, int, int, int, int]


class _Unreadable(Exception):
    """Why the file could not give a usable token this time (safe to show: no token text)."""


class _Good(msgspec.Struct, frozen=True):
    token: str
    # None for a token without `exp` (a legacy secret token never expires).
    expires_at: float | None


class ProjectedTokenFile(TokenSource):
    """Reads the token file kubelet-style: by path, never holding it open, keeping the last good
    token while it is still valid if a read fails (pkg/volume/util/atomic_writer.go swaps the
    `..data` symlink, so the path resolves to a new file on every rotation)."""

    __slots__ = ("_clock", "_good", "_identity", "_last_failure", "_path", "_read_at", "_recheck")

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock = time.time,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._recheck = recheck_seconds
        self._good: _Good | None = None
        self._identity: _FileIdentity | None = None
        self._read_at = float("-inf")
        self._last_failure: str | None = None

    @property
    def path(self) -> Path:
        """The token file's path as configured (`KSA_TOKEN_FILE`)."""
        return self._path

    def current_token(self) -> str:
        """Return the current token; raises TokenUnavailable naming the path and the reason."""
        now = self._clock()
        try:
            identity = self._identify()
        except _Unreadable as exc:
            return self._fall_back(str(exc), now)
        if (
            self._good is not None
            and identity == self._identity
            and now - self._read_at < self._recheck
        ):
            return self._good.token
        try:
            good, identity = self._read()
        except _Unreadable as exc:
            return self._fall_back(str(exc), now)
        self._good, self._identity, self._read_at = good, identity, now
        if self._last_failure is not None:
            logger.info("service account token at %s is readable again", self._path)
            self._last_failure = None
        return good.token

    def _identify(self) -> _FileIdentity:
        try:
            resolved = os.path.realpath(self._path, strict=True)
            stat = os.stat(resolved)
        except OSError as exc:
            raise _Unreadable(exc.strerror or type(exc).__name__) from None
        return resolved, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _read(self) -> tuple[_Good, _FileIdentity]:
        try:
            resolved = os.path.realpath(self._path, strict=True)
            # Opened, read and closed here: an fd held across a `..data` swap would keep
            # serving the old, soon expired, token (kubernetes-client/python#1768).
            with open(resolved, "rb") as handle:
                stat = os.fstat(handle.fileno())
                raw = handle.read(JWT_MAX_BYTES + 1)
        except OSError as exc:
            raise _Unreadable(exc.strerror or type(exc).__name__) from None
        identity = (resolved, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return _parse(raw), identity

    def _fall_back(self, reason: str, now: float) -> str:
        good = self._good
        if good is not None and (good.expires_at is None or now < good.expires_at):
            if self._last_failure != reason:
                logger.warning(
                    "service account token at %s cannot be read (%s); keeping the last good "
                    "token until it expires",
                    self._path,
                    reason,
                )
                self._last_failure = reason
            return good.token
        failure = f"{reason}; no valid token held"
        if self._last_failure != failure:
            # Said once per reason: every request would otherwise log the same line.
            logger.error("service account token at %s cannot be read (%s)", self._path, failure)
        self._last_failure = failure
        raise TokenUnavailable(f"service account token at {self._path} is unavailable: {reason}")


def _parse(raw: bytes) -> _Good:
    if len(raw) > JWT_MAX_BYTES:
        raise _Unreadable(f"the file is larger than {JWT_MAX_BYTES} bytes")
    try:
        # The kubelet writes no trailing newline, but a hand-written file often has one.
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise _Unreadable("the file is not ASCII text") from None
    if not token:
        raise _Unreadable("the file is empty")
    try:
        parts = parse_compact(token)
        if not parts.signature:
            raise Malformed("token has no signature")
        claims = decode_claims(parts.payload)
    except Malformed as exc:
        raise _Unreadable(f"the file does not hold a usable JWT: {exc.detail}") from None
    return _Good(token, claims.exp)
