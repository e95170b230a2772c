"""Faults of be's token file: rotation under load, deletion, permission denied, not a file.

be keeps the last good token while it is valid (client-go and the kubelet do the same), then
answers 503 token_unavailable, and says why in one log line; it recovers once the file is back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.devcluster_harness import poll, start_devcluster
from tests.reliability.conftest import (
    FaultBench,
    SharedStack,
    Tally,
    assert_no_leaks,
    devcluster_logs,
    register_logs,
)
from tests.reliability.faults import call, wait_for_log
from tests.reliability.logscan import SecretLedger
from tests.reliability.services import (
    Service,
    be2_environment,
    be_environment,
    start_service,
)

pytestmark = pytest.mark.e2e

# linux/capability.h and linux/prctl.h
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2
_PR_CAPBSET_DROP = 24


def _drop_file_capabilities() -> None:
    """In the child before exec: drop the capabilities that let root ignore file modes.

    Dropped from the bounding set, they are gone from the permitted set after exec, so this
    root process meets `chmod 000` like any other user (capabilities(7)).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _unprivileged() -> Callable[[], None] | None:
    return _drop_file_capabilities if os.geteuid() == 0 else None


def _write_atomically(path: Path, token: str) -> None:
    # As the kubelet does: never a half-written file at the path (atomic_writer.go).
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(token)
    os.replace(tmp, path)


def _break(path: Path, mode: str) -> None:
    if mode == "deleted":
        path.unlink()
    elif mode == "permission denied":
        path.chmod(0)
    elif mode == "a directory":
        path.unlink()
        path.mkdir()
    elif mode == "a dangling symlink":
        path.unlink()
        path.symlink_to(path.parent / "..data" / "token-gone")
    else:
        raise ValueError(mode)


def _repair(path: Path, token: str) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _write_atomically(path, token)


_LOG_REASON = {
    "deleted": "no such file or directory",
    "permission denied": "permission denied",
    "a directory": "is a directory",
    "a dangling symlink": "no such file or directory",
}


def _check_mechanism(path: Path) -> None:
    """Honesty check: a child started like be really cannot read the chmod-000 file."""
    result = subprocess.run(
        [sys.executable, "-c", f"open({str(path)!r}).read()"],
        preexec_fn=_unprivileged(),
        capture_output=True,
        check=False,
    )
    assert result.returncode != 0 and b"PermissionError" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "mode", ["deleted", "permission denied", "a directory", "a dangling symlink"]
)
def test_unreadable_token_file_keeps_the_last_good_token_then_503(
    mode: str,
    shared_stack: SharedStack,
    tmp_path: Path,
    ledger: SecretLedger,
    tally: Tally,
) -> None:
    cluster = shared_stack.cluster
    volume = tmp_path / "serviceaccount"
    volume.mkdir()
    token_file = volume / "token"

    def mint(seconds: int) -> str:
        token = cluster.mint("be-sa", pod=cluster.pod("be").name, expiration_seconds=seconds)
        ledger.add_token(token, "be token")
        return token

    _write_atomically(token_file, mint(3600))
    env = be_environment(cluster, shared_stack.be2.url, KSA_TOKEN_FILE=str(token_file))
    be: Service
    with start_service(
        "be",
        env,
        tmp_path / "logs",
        name=f"be-{mode.replace(' ', '-')}",
        preexec_fn=_unprivileged(),
    ) as be:
        register_logs(tally, *be.log_paths)
        # A short-lived token, picked up by be at once (it re-checks the file on every read).
        short = mint(10)
        _write_atomically(token_file, short)
        poll(
            lambda: call(be, "/get-jwt").json.get("token") == short,
            timeout=15,
            what="be to read the new token",
        )

        _break(token_file, mode)
        tally.add("faults injected")
        if mode == "permission denied" and os.geteuid() == 0:
            _check_mechanism(token_file)
        kept = call(be, "/get-jwt")
        assert (kept.status, kept.json.get("token")) == (200, short), "last good token kept"
        relayed = call(be, "/call-be2")
        assert relayed.status == 200 and relayed.json["be2_status"] == 200, relayed.json
        assert call(be, "/readyz").status == 200

        # Once the last good token has expired, nothing is served in its place.
        gone = poll(
            lambda: (a := call(be, "/get-jwt")).status == 503 and a,
            timeout=30,
            what="503 once the last good token expired",
        )
        assert gone.reason == "token_unavailable" or gone.json.get("error") == "token_unavailable"
        assert call(be, "/readyz").status == 503
        failed_call = call(be, "/call-be2")
        assert failed_call.status == 503, failed_call.json
        tally.add("requests sent", 8)
        wait_for_log(be, str(token_file), _LOG_REASON[mode])

        _repair(token_file, mint(3600))
        poll(lambda: call(be, "/get-jwt").status == 200, timeout=15, what="be to recover")
        assert call(be, "/call-be2").json["be2_status"] == 200
    assert_no_leaks(ledger, list(be.log_paths))


def test_token_rotation_every_second_under_load_fails_no_call(
    tmp_path: Path, ledger: SecretLedger, tally: Tally
) -> None:
    """The devcluster's kubelet rewrites every projected token about every second (TTL 1 s,
    refresh at 80%) while four clients call be /call-be2 in a loop: every call succeeds."""
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(start_devcluster(tmp_path / "devcluster", token_ttl=1))
        register_logs(tally, *devcluster_logs(cluster))
        bench = FaultBench(cluster, tmp_path / "logs", stack, tally)
        be2 = bench.start("be2", be2_environment(cluster))
        be = bench.start("be", be_environment(cluster, be2.url))
        outcomes: Counter[str] = Counter()
        expiries: set[int] = set()
        failures: list[str] = []
        stop = threading.Event()

        def caller() -> None:
            with httpx.Client(base_url=be.url, timeout=30.0) as client:
                while not stop.is_set():
                    response = client.get("/call-be2")
                    body = response.json()
                    ok = response.status_code == 200 and body.get("be2_status") == 200
                    outcomes["ok" if ok else "failed"] += 1
                    if ok:
                        expiries.add(body["be2"]["expires_at"])
                    elif len(failures) < 5:
                        failures.append(f"{response.status_code} {body}")

        workers = [threading.Thread(target=caller) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            # be2 saw ten different tokens of be (distinct expiries), however long that takes;
            # meanwhile every token the kubelet writes goes into the ledger for the log scan.
            def rotated_ten_times() -> bool:
                for pod in cluster.pods:
                    with contextlib.suppress(OSError):
                        ledger.add_token(pod.token(), "pod token")
                return len(expiries) >= 10

            poll(rotated_ten_times, timeout=90, interval=0.05, what="ten rotations seen by be2")
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        for pod in cluster.pods:
            ledger.add_token(pod.token(), "pod token")
        tally.add("token file rotations under load (seen by be2)", len(expiries))
        tally.add("requests sent", sum(outcomes.values()))
        assert failures == [] and outcomes["failed"] == 0, failures
        assert outcomes["ok"] > 0
        log_files = bench.log_files()
    assert_no_leaks(ledger, log_files)
