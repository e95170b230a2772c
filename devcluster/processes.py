"""Child processes for `up` and `demo`: own process group, log to a file, stopped with a bound."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "Child",
    "ChildExited",
    "NotReady",
    "free_port",
    "shielded_from_signals",
    "spawn",
    "stop_all",
    "wait_for",
    "wait_http_ready",
]

# How often a bounded wait looks again; small enough that readiness is noticed within ~50 ms.
POLL_INTERVAL_SECONDS = 0.05


class NotReady(Exception):
    """A bounded wait ran out before its condition held."""


class ChildExited(NotReady):
    """A child process ended while we were waiting for it."""


@dataclass(frozen=True, slots=True)
class Child:
    """One started child: the leader of its own process group, its output in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's log (its own output: never contains our tokens)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise ChildExited (with the log tail) if the child has ended."""
        code = self.process.poll()
        if code is not None:
            raise ChildExited(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                f"{self.log_tail()}"
            )


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on `host` (free now; the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
) -> Child:
    """Start `argv` in a new session (so Ctrl-C reaches only us, and we can signal its group)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - argv is built by us, never from input
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name=name, process=process, log_path=log_path)


def _signal_group(child: Child, signum: int) -> None:
    # The group id is the leader's pid; Linux keeps that id from being reused while any member
    # of the group is alive, so this never hits an unrelated process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


def stop_all(children: Sequence[Child], grace_seconds: float = 5.0) -> None:
    """SIGTERM every child's group, wait up to `grace_seconds`, then SIGKILL what is left.

    Every child is reaped before this returns, so none is left behind (nor as a zombie).
    """
    for child in children:
        if child.alive:
            _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        # Also reaches grandchildren left in the group after a leader that did exit in time.
        _signal_group(child, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=grace_seconds)


def wait_for(
    condition: Callable[[], bool],
    timeout_seconds: float,
    what: str,
    children: Sequence[Child] = (),
) -> float:
    """Poll `condition` until true; returns the seconds it took.

    Raises NotReady after `timeout_seconds`, or ChildExited as soon as one of `children` ends.
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    while True:
        for child in children:
            child.check_alive()
        if condition():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise NotReady(f"{what}: not ready after {timeout_seconds:g} s")
        time.sleep(POLL_INTERVAL_SECONDS)


def wait_http_ready(
    url: str, child: Child, client: httpx.Client, timeout_seconds: float = 20.0
) -> float:
    """Poll `url` (a /readyz) until it answers 200; seconds taken. Fails fast if `child` ends."""

    def ready() -> bool:
        try:
            return client.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return wait_for(ready, timeout_seconds, f"{child.name} at {url}", children=(child,))


@contextlib.contextmanager
def shielded_from_signals() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM inside the block (a second Ctrl-C must not cut a shutdown short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
