"""A served port's TLS certificate and key files: loaded TLS 1.3-only, and watched for rotation."""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable

__all__ = [
    "CHECK_INTERVAL_SECONDS",
    "MINIMUM_VERSION",
    "ServingCertificate",
    "ServingCertificateError",
]

logger = logging.getLogger("ksa.tls")

# TLS 1.3 only: every client of be2 (httpx on OpenSSL 3, curl, the kubelet's probes, Prometheus)
# speaks it, and its cipher suites are all AEAD, so there is no cipher list to get wrong.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_3
# cert-manager renews at two thirds of a certificate's life, days ahead: a few seconds' delay in
# noticing is nothing, and two stat() calls per tick cost nothing.
CHECK_INTERVAL_SECONDS = 2.0

Fingerprint = tuple[tuple[str, int, int, int, int], ...]


class ServingCertificateError(ValueError):
    """The certificate or key file cannot be used; the message names the file and why."""


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    # A key needing a password must not make OpenSSL prompt on a terminal at start-up.
    raise _Encrypted


class ServingCertificate:
    """The PEM certificate chain and private key a server presents, as files that may be replaced.

    Secrets mounted by the kubelet (cert-manager's among them) are replaced by swapping a
    `..data` symlink; other tools rewrite the files. Both show as a new inode or mtime.
    """

    __slots__ = ("cert_file", "key_file")

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file

    def context(self) -> ssl.SSLContext:
        """A server context presenting the files' current certificate, TLS 1.3 only.

        Raises:
            ServingCertificateError: a file is unreadable, or the pair is not a PEM certificate
                chain with its unencrypted private key.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = MINIMUM_VERSION
        try:
            context.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
        except _Encrypted:
            raise ServingCertificateError(
                f"{self.key_file} is an encrypted private key; mount it unencrypted"
            ) from None
        except ssl.SSLError as exc:  # an OSError subclass: caught first
            raise ServingCertificateError(
                f"{self.cert_file} and {self.key_file} are not a PEM certificate and its "
                f"private key ({exc.reason or exc})"
            ) from None
        except OSError as exc:
            raise ServingCertificateError(
                f"{exc.filename or self.cert_file} cannot be read ({exc.strerror})"
            ) from None
        return context

    def fingerprint(self) -> Fingerprint:
        """What changes when either file is replaced or rewritten (empty parts when missing)."""
        parts = []
        for path in (self.cert_file, self.key_file):
            try:
                stat = os.stat(path)
            except OSError:
                parts.append(("", 0, 0, 0, 0))
                continue
            parts.append(
                (os.path.realpath(path), stat.st_ino, stat.st_mtime_ns, stat.st_size, stat.st_dev)
            )
        return tuple(parts)

    def new_context(self, served: Fingerprint) -> tuple[Fingerprint, ssl.SSLContext] | None:
        """The files' fingerprint and a context for them when they differ from `served`.

        Raises:
            ServingCertificateError: they changed but do not load (a half-written pair, say).
        """
        current = self.fingerprint()
        if current == served:
            return None
        return current, self.context()

    def watch(
        self,
        on_change: Callable[[ssl.SSLContext], None],
        interval: float = CHECK_INTERVAL_SECONDS,
    ) -> Callable[[], None]:
        """Call `on_change` with a new context whenever the files change and load; returns stop.

        A change that does not load, or that `on_change` fails to apply, is logged (once) and
        tried again on the next tick; the server keeps presenting the certificate it has.
        """
        stop = threading.Event()
        served = [self.fingerprint()]
        failed: list[Fingerprint | None] = [None]

        def check() -> None:
            try:
                found = self.new_context(served[0])
            except ServingCertificateError as exc:
                if failed[0] != self.fingerprint():
                    failed[0] = self.fingerprint()
                    logger.warning("new TLS certificate not loaded yet: %s", exc)
                return
            if found is not None:
                on_change(found[1])
                served[0] = found[0]
                logger.info("TLS certificate %s changed: serving the new one", self.cert_file)

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    check()
                except Exception as exc:  # a watcher must outlive any one bad tick
                    logger.error("TLS certificate check failed: %s", type(exc).__name__)

        threading.Thread(target=loop, name="tls-certificate-watch", daemon=True).start()
        return stop.set
