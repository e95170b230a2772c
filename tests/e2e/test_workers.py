"""be2 with two workers: both verify, /metrics answers for the pod, SIGTERM drains each worker."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.devcluster_harness import DevCluster, poll, start_devcluster
from tests.reliability.services import be2_environment, free_port

pytestmark = pytest.mark.e2e

REQUESTS = 200
VALID = 150  # the rest carry no token: 401 missing_token
START_SECONDS = 60.0
STOP_SECONDS = 20.0
IN_FLIGHT = 16
MAX_IN_FLIGHT = 256
SERVE = (sys.executable, "-m", "entrypoints.cli", "serve", "be2", "--server")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with start_devcluster(tmp_path_factory.mktemp("workers") / "devcluster") as running:
        yield running


class Pod:
    """`ksa-auth serve be2 --workers 2` as one process tree, as a container runs it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.url = f"http://127.0.0.1:{port}"

    def workers(self) -> set[int]:
        """The supervisor's child processes (granian's or uvicorn's workers), without the
        helper multiprocessing starts beside uvicorn's."""
        found = set()
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if entry.name.isdigit():
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    command = (entry / "cmdline").read_bytes()
                    if int(fields[1]) == self.process.pid and b"resource_tracker" not in command:
                        found.add(int(entry.name))
        return found

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text


@contextlib.contextmanager
def two_workers(
    cluster: DevCluster, server: str, metrics_dir: Path, log_dir: Path
) -> Iterator[Pod]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSA_")}
    env |= be2_environment(cluster, KSA_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    port = free_port()
    log = log_dir / f"be2-{server}.log"
    fetches_before = cluster.state()["discovery_requests"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*SERVE, server, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own group, so that its workers go with it even if it must be killed.
            start_new_session=True,
        )
    pod = Pod(process, port, log)
    try:
        poll(lambda: len(pod.workers()) == 2, timeout=START_SECONDS, what="two workers")
        poll(lambda: _ready(pod), timeout=START_SECONDS, what="be2 ready")
        # /readyz is one worker's answer: wait until each has fetched its keys once.
        poll(
            lambda: cluster.state()["discovery_requests"] - fetches_before >= 2,
            timeout=START_SECONDS,
            what="both workers holding the cluster's keys",
        )
        yield pod
    finally:
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_SECONDS)
        # Whatever is left of the group (a worker orphaned by a failed stop) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _ready(pod: Pod) -> bool:
    assert pod.process.poll() is None, pod.log.read_text()[-3000:]
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{pod.url}/readyz", timeout=2).status_code == 200
    return False


def _call(url: str, token: str | None) -> httpx.Response:
    # A connection per request: the kernel hands each new one to either worker.
    headers = {"Connection": "close"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{url}/validate-auth", headers=headers, timeout=30)


def _validations(text: str) -> dict[str, float]:
    pattern = re.compile(r'^ksa_validations_total\{result="([a-z_]+)"\} ([0-9.e+]+)$', re.M)
    return {result: float(value) for result, value in pattern.findall(text)}


def _per_worker(metrics_dir: Path) -> dict[int, float]:
    """Validations in each worker's own counter file, summed by the library alone."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        alone = metrics_dir.parent / f"alone-{path.stem}"
        alone.mkdir()
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        text = generate_latest(registry).decode()
        counts[int(path.stem.split("_")[1])] = sum(_validations(text).values())
    return counts


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_two_workers_answer_correctly_and_metrics_sum_over_both(
    cluster: DevCluster, server: str, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Left by an earlier run of the container: must not be counted (nor break the sum).
    (metrics_dir / "counter_1.db").write_bytes(b"not a metrics file")
    be = cluster.pod("be")
    with two_workers(cluster, server, metrics_dir, tmp_path) as pod:
        workers = pod.workers()
        tokens = [be.token() if n < VALID else None for n in range(REQUESTS)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda token: _call(pod.url, token), tokens))

        for token, answer in zip(tokens, answers, strict=True):
            if token is None:
                assert answer.status_code == 401, answer.text
                assert answer.json()["reason"] == "missing_token"
            else:
                assert answer.status_code == 200, answer.text
                assert answer.json()["subject"] == be.subject

        # Each worker copies its counts to its file within a second; a scrape sums the files.
        expected = {"ok": float(VALID), "missing_token": float(REQUESTS - VALID)}
        poll(
            lambda: {k: v for k, v in _validations(pod.metrics()).items() if v} == expected,
            timeout=15,
            what=f"/metrics summing {REQUESTS} validations over both workers",
        )
        per_worker = _per_worker(metrics_dir)
        assert set(per_worker) == workers, (per_worker, workers)
        assert all(count > 0 for count in per_worker.values()), per_worker
        assert sum(per_worker.values()) == REQUESTS


def test_sigterm_drains_every_worker(cluster: DevCluster, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with two_workers(cluster, "granian", metrics_dir, tmp_path) as pod:
        workers = pod.workers()
        # A key rotated in after both workers loaded theirs: the first token signed with it
        # makes each worker fetch the keys again, and the fetches are slowed, so requests are
        # in flight in both workers when SIGTERM arrives.
        cluster.admin("/admin/signing-keys/rotate", {})
        token = cluster.mint("be-sa", pod=cluster.pod("be").name)
        fetches_before = cluster.state()["discovery_requests"]
        cluster.admin("/admin/faults", {"keys": "slow", "delay_seconds": 2.0})
        try:
            # Sent whole before SIGTERM, on connections the workers have accepted. Which worker
            # accepts a connection is the kernel's choice: send more until both are fetching.
            in_flight = [_send(pod.port, token) for _ in range(IN_FLIGHT)]

            def both_fetching() -> bool:
                if len(in_flight) < MAX_IN_FLIGHT:
                    in_flight.append(_send(pod.port, token))
                return cluster.state()["discovery_requests"] - fetches_before >= 2

            poll(both_fetching, timeout=15, what="both workers fetching the rotated key")
            pod.process.send_signal(signal.SIGTERM)
            statuses = [_status(connection) for connection in in_flight]
        finally:
            cluster.admin("/admin/faults", {"keys": "ok", "delay_seconds": 0})
        assert statuses == [200] * len(in_flight), pod.log.read_text()[-3000:]
        assert pod.process.wait(timeout=STOP_SECONDS) == 0, pod.log.read_text()[-3000:]
        poll(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
            timeout=STOP_SECONDS,
            what="every worker gone",
        )
        # Each worker's last counts reached its file before it stopped.
        assert _validations(_sum_files(metrics_dir)).get("ok") == len(in_flight)


def _send(port: int, token: str) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=STOP_SECONDS)
    connection.sendall(
        f"GET /validate-auth HTTP/1.1\r\nHost: be2\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    return connection


def _status(connection: socket.socket) -> int:
    """The status of the answer on `connection` (0: closed without one)."""
    with connection:
        answer = b""
        while b"\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                return 0
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _sum_files(metrics_dir: Path) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    return generate_latest(registry).decode()
