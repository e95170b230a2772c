"""A ledger of every token the reliability runs send, and a scan of the captured logs for them."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Leak", "SecretLedger"]

# A real signature is 43+ base64url characters (HS256), 86 (ES256), 342 (RS256). Shorter runs
# (hostile tokens like "a.b.c") would match unrelated log text by chance.
_MIN_RUN = 24
_RUN = re.compile(rb"[A-Za-z0-9_-]{%d,}" % _MIN_RUN)


@dataclass(frozen=True)
class Leak:
    path: Path
    what: str
    line_number: int


@dataclass
class SecretLedger:
    """Fingerprints of tokens that must never show up in a log line.

    A token is caught by its signature segment: any line holding the whole token holds it too,
    and a signature alone is enough to replay nothing but still must not leak. A token
    with no signature (alg none) is caught by its payload segment. Fingerprints are maximal
    base64url runs, so the scan is one regex pass per log plus set lookups, whatever the count.
    """

    _fingerprints: dict[bytes, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_token(self, token: str | bytes, label: str = "token") -> None:
        raw = token.encode("latin-1", "replace") if isinstance(token, str) else token
        segments = raw.strip().split(b".")
        if len(segments) >= 3 and len(segments[-1]) >= _MIN_RUN:
            chosen, kind = segments[-1], "signature"
        elif len(segments) >= 2:
            chosen, kind = segments[1], "payload"
        else:
            chosen, kind = segments[0], "token"
        with self._lock:
            for run in _RUN.findall(chosen):
                self._fingerprints.setdefault(run, f"{label} ({kind})")

    def add_tokens(self, tokens: Iterable[str | bytes], label: str = "token") -> None:
        for token in tokens:
            self.add_token(token, label)

    def __len__(self) -> int:
        return len(self._fingerprints)

    def scan(self, paths: Iterable[Path]) -> list[Leak]:
        """Every (file, what leaked, line) where a registered fingerprint occurs."""
        with self._lock:
            fingerprints = dict(self._fingerprints)
        leaks: list[Leak] = []
        for path in paths:
            if not path.exists():
                continue
            for line_number, line in enumerate(path.read_bytes().splitlines(), start=1):
                leaks.extend(
                    Leak(path, fingerprints[run], line_number)
                    for run in _RUN.findall(line)
                    if run in fingerprints
                )
        return leaks
