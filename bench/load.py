"""Bounded HTTP/1.1 keep-alive load on loopback: wrk when installed, else a Python generator."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LoadResult", "run_load", "run_load_count", "wrk_available"]

# wrk sends the tokens of a file in turn, from an offset, so successive "fresh token" runs
# against one server go on with tokens it has not seen.
_WRK_SCRIPT = """
local tokens = {}
local count = 0
local index = 0
local answered = 0

function init(args)
  for line in io.lines(args[1]) do
    count = count + 1
    tokens[count] = line
  end
  index = tonumber(args[2]) or 0
end

function request()
  index = index + 1
  local token = tokens[((index - 1) % count) + 1]
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. token})
end
"""


@dataclass(slots=True)
class LoadResult:
    """What one load run measured; `rps` counts only answered requests."""

    tool: str
    requests: int
    seconds: float
    non_2xx: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def clean(self) -> bool:
        """Every request answered 2xx, no socket errors."""
        return self.requests > 0 and self.non_2xx == 0 and self.errors == 0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None and os.environ.get("BENCH_LOAD") != "python"


def run_load(
    port: int,
    path: str,
    tokens: Sequence[str],
    *,
    connections: int,
    duration: float,
    offset: int = 0,
) -> LoadResult:
    """Send GET `path` with `Authorization: Bearer <token>` for `duration` seconds.

    Tokens are taken in turn starting at `offset` (wrapping around).
    """
    if not tokens:
        raise ValueError("at least one token is needed")
    if wrk_available():
        return _run_wrk(port, path, tokens, connections, duration, offset)
    return _run_python(port, path, tokens, connections, duration, 0, offset)


def run_load_count(
    port: int, path: str, tokens: Sequence[str], *, connections: int, requests: int
) -> LoadResult:
    """Send exactly `requests` requests (tokens in turn), counted by the Python generator."""
    if not tokens:
        raise ValueError("at least one token is needed")
    # Bounded all the same: even at 100 req/s a run ends within its duration.
    duration = max(60.0, requests / 100)
    return _run_python(port, path, tokens, connections, duration, requests, 0)


def _run_wrk(
    port: int,
    path: str,
    tokens: Sequence[str],
    connections: int,
    duration: float,
    offset: int,
) -> LoadResult:
    url = f"http://127.0.0.1:{port}{path}"
    seconds = max(1, round(duration))
    with tempfile.TemporaryDirectory(prefix="ksa-bench-wrk-") as tmp:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
        if len(tokens) == 1:
            # A fixed header: no Lua per request, so wrk costs the least it can.
            command += ["-H", f"Authorization: Bearer {tokens[0]}", url]
        else:
            script = Path(tmp, "tokens.lua")
            script.write_text(_WRK_SCRIPT)
            token_file = Path(tmp, "tokens.txt")
            token_file.write_text("\n".join(tokens) + "\n")
            command += ["-s", str(script), url, "--", str(token_file), str(offset)]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return _parse_wrk(completed.stdout)


def _parse_wrk(output: str) -> LoadResult:
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if done is None:
        raise RuntimeError(f"cannot read wrk output: {output!r}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    requests, seconds = int(done.group(1)), float(done.group(2)) * scale
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is not None and float(rate.group(1)) > 0:
        # wrk's own rate divides by its exact run time; the summary line rounds it.
        seconds = requests / float(rate.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        tool="wrk",
        requests=requests,
        seconds=seconds,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def _run_python(
    port: int,
    path: str,
    tokens: Sequence[str],
    connections: int,
    duration: float,
    max_requests: int,
    offset: int,
) -> LoadResult:
    """Keep-alive load from one thread, blocking sockets behind a selector: the generator
    shares the machine with the server it measures, so it spends as little CPU per request as
    it can (a few syscalls and a header scan; an asyncio streams client costs more)."""
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        for token in tokens
    ]
    limit = max_requests if max_requests > 0 else 1 << 62
    first = offset % len(requests)
    statuses: Counter[int] = Counter()
    errors = sent = 0
    pending: dict[socket.socket, bytes] = {}
    selector = selectors.DefaultSelector()
    start = time.perf_counter()
    deadline = start + duration

    def send_next(sock: socket.socket) -> None:
        nonlocal sent
        sock.sendall(requests[(first + sent) % len(requests)])
        sent += 1

    for _ in range(min(connections, limit)):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Blocking: the selector says when a read will not wait, and a request fits the
            # socket's buffer, so a send does not wait either.
            sock.settimeout(None)
            send_next(sock)
        except OSError:
            errors += 1
            continue
        pending[sock] = b""
        selector.register(sock, selectors.EVENT_READ, sock)
    while pending:
        # No request starts after the deadline; one in flight gets wrk's 5 s to be answered.
        now = time.perf_counter()
        events = selector.select(timeout=deadline + 5.0 - now) if now < deadline + 5.0 else []
        if not events:
            errors += len(pending)
            break
        for key, _ in events:
            sock = key.data
            try:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed by the server")
                buffer, answered = _complete_responses(pending[sock] + data, statuses)
                pending[sock] = buffer
                if answered and not buffer:
                    if sent < limit and time.perf_counter() < deadline:
                        send_next(sock)
                    else:
                        _drop(selector, pending, sock)
            except (OSError, ValueError):
                errors += 1
                _drop(selector, pending, sock)
    seconds = time.perf_counter() - start
    for sock in list(pending):
        _drop(selector, pending, sock)
    selector.close()
    non_2xx = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return LoadResult(
        tool="python",
        requests=sum(statuses.values()),
        seconds=seconds,
        non_2xx=non_2xx,
        errors=errors,
        statuses=statuses,
    )


def _drop(
    selector: selectors.BaseSelector, pending: dict[socket.socket, bytes], sock: socket.socket
) -> None:
    selector.unregister(sock)
    del pending[sock]
    sock.close()


def _complete_responses(buffer: bytes, statuses: Counter[int]) -> tuple[bytes, int]:
    """Count the whole responses at the start of `buffer`; return what is left and how many."""
    answered = 0
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return buffer, answered
        head = buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ValueError("response without Content-Length")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return buffer, answered
        statuses[int(buffer[9:12])] += 1
        answered += 1
        buffer = buffer[total:]
