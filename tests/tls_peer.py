"""Test TLS material from a devcluster-style CA, and a loopback TLS server that records input."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from devcluster.tls import CertificateAuthority

__all__ = ["Connection", "RecordingTlsServer", "TestCa"]

_BODY = b'{"authenticated":true}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_BODY)}\r\nconnection: close\r\n\r\n".encode()
    + _BODY
)


class TestCa:
    """A CA of the devcluster's kind, writing its certificate and issued pairs under `directory`."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, directory: Path, name: str = "ca") -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.authority = CertificateAuthority(datetime.datetime.now(datetime.UTC))
        self.ca_file = directory / f"{name}.crt"
        self.ca_file.write_bytes(self.authority.pem)

    def issue(self, stem: str, names: Sequence[str]) -> tuple[Path, Path]:
        """(certificate file, key file) of a server certificate for `names`."""
        now = datetime.datetime.now(datetime.UTC)
        key_pem, cert_pem = self.authority.issue_server(names[0], names, now)
        cert_file, key_file = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        return cert_file, key_file


@dataclass
class Connection:
    """One accepted connection: how its handshake ended and the decrypted bytes received."""

    handshake: str = ""
    received: bytes = b""


@dataclass
class RecordingTlsServer:
    """Presents `cert_file`; records every connection; answers one JSON 200 to a request.

    Whatever the client sends after the handshake is decrypted and kept, so a bearer token sent
    over a connection whose certificate the client should have refused would show here.
    """

    cert_file: Path
    key_file: Path
    connections: list[Connection] = field(default_factory=list)
    _listener: socket.socket = field(default_factory=socket.socket)
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    def __enter__(self) -> RecordingTlsServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(context,), daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self, context: ssl.SSLContext) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            connection = Connection()
            self.connections.append(connection)
            raw.settimeout(5.0)
            with raw:
                self._record(context, raw, connection)

    @staticmethod
    def _record(context: ssl.SSLContext, raw: socket.socket, connection: Connection) -> None:
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            connection.handshake = f"failed: {exc}"
            return
        connection.handshake = "ok"
        with tls:
            for chunk in _chunks(tls):
                connection.received += chunk
                if b"\r\n\r\n" in connection.received:
                    tls.sendall(ANSWER)
                    return


def _chunks(tls: ssl.SSLSocket) -> Iterator[bytes]:
    while True:
        try:
            chunk = tls.recv(65536)
        except (ssl.SSLError, OSError):
            return
        if not chunk:
            return
        yield chunk
