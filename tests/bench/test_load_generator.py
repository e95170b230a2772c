"""The Python load generator: what it counts, against a real server on loopback."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.load import _complete_responses, run_load, run_load_count

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
DENIED = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"


def test_counts_whole_responses_and_keeps_a_partial_one() -> None:
    statuses: Counter[int] = Counter()
    rest, answered = _complete_responses(OK + DENIED + OK[:20], statuses)
    assert (rest, answered) == (OK[:20], 2)
    assert statuses == Counter({200: 1, 401: 1})
    # The rest of the split response arrives: it is counted once, whole.
    rest, answered = _complete_responses(rest + OK[20:], statuses)
    assert (rest, answered) == (b"", 1)
    assert statuses == Counter({200: 2, 401: 1})


def test_a_body_is_not_counted_before_it_is_all_there() -> None:
    statuses: Counter[int] = Counter()
    assert _complete_responses(OK[:-1], statuses) == (OK[:-1], 0)
    assert not statuses


def test_a_response_without_content_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        _complete_responses(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Counter())


class _Server:
    """Answers every request on a keep-alive connection; records the Authorization headers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.tokens: list[bytes] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    token = head.split(b"Authorization: Bearer ", 1)[1].split(b"\r\n")[0]
                    with self.lock:
                        self.tokens.append(token)
                    conn.sendall(DENIED if token == b"bad" else OK)


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.listener.close()


def test_a_counted_run_sends_each_token_once(server: _Server) -> None:
    tokens = [f"t{i}" for i in range(500)]
    result = run_load_count(server.port, "/", tokens, connections=8, requests=500)
    assert result.requests == 500 and result.clean
    assert sorted(server.tokens) == sorted(token.encode() for token in tokens)


def test_other_statuses_are_counted_as_such(server: _Server) -> None:
    result = run_load_count(server.port, "/", ["good", "bad"], connections=2, requests=10)
    assert result.requests == 10
    assert result.statuses == Counter({200: 5, 401: 5})
    assert result.non_2xx == 5 and not result.clean


def test_a_timed_run_stops_sending_at_its_deadline(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_LOAD", "python")
    result = run_load(server.port, "/", ["a", "b", "c"], connections=4, duration=0.3)
    assert result.clean and result.requests == len(server.tokens) > 0
    assert 0.3 <= result.seconds < 5


def test_a_refused_connection_is_an_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        result = run_load_count(port, "/", ["x"], connections=3, requests=10)
    assert result.requests == 0 and result.errors == 3 and not result.clean
