"""Fixtures for the reliability suites: a shared devcluster + be2 pair, the leak ledger, counts."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.devcluster_harness import DevCluster, start_devcluster
from tests.reliability.hostile import HostileContext, Mint, Minter, local_minter
from tests.reliability.jws import SigningKey
from tests.reliability.logscan import SecretLedger
from tests.reliability.services import Service, be2_environment, start_service


@dataclass
class Tally:
    """What the reliability suites did, reported at the end of the run."""

    counts: Counter[str] = field(default_factory=Counter)
    log_files: set[Path] = field(default_factory=set)

    def add(self, what: str, amount: int = 1) -> None:
        self.counts[what] += amount


_TALLY = Tally()
_LEDGER = SecretLedger()


@pytest.fixture(scope="session")
def tally() -> Tally:
    return _TALLY


@pytest.fixture(scope="session")
def ledger() -> SecretLedger:
    return _LEDGER


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TALLY.counts:
        return
    terminalreporter.section("reliability counts")
    for what, count in sorted(_TALLY.counts.items()):
        terminalreporter.write_line(f"{what:<40} {count}")
    terminalreporter.write_line(f"{'log files scanned':<40} {len(_TALLY.log_files)}")
    terminalreporter.write_line(f"{'secret fingerprints in the ledger':<40} {len(_LEDGER)}")


def register_logs(tally: Tally, *paths: Path) -> None:
    tally.log_files.update(paths)


def assert_no_leaks(ledger: SecretLedger, paths: Iterator[Path] | list[Path]) -> None:
    leaks = ledger.scan(list(paths))
    assert not leaks, "tokens or signatures in logs: " + ", ".join(
        f"{leak.path.name}:{leak.line_number} ({leak.what})" for leak in leaks[:10]
    )


def devcluster_logs(cluster: DevCluster) -> list[Path]:
    return [cluster.state_dir / "devcluster.stdout", cluster.state_dir / "devcluster.stderr"]


def cluster_minter(cluster: DevCluster) -> Minter:
    """Mint through the devcluster's admin API (its keys never leave the process)."""
    ec_kid = cluster.raw.get("_ec_kid")

    def mint(request: Mint) -> str:
        extra: dict[str, Any] = {}
        if request.issued_at is not None:
            extra["issued_at"] = request.issued_at
        if request.ec:
            extra["kid"] = ec_kid
        return cluster.mint(
            request.service_account,
            audiences=list(request.audiences) if request.audiences else None,
            expiration_seconds=request.expiration_seconds,
            pod=cluster.pod("be").name if request.service_account == "be-sa" else None,
            **extra,
        )

    return mint


@dataclass
class SharedStack:
    """One devcluster (RSA and EC keys published) and two be2 processes verifying its tokens.

    `be2` fetches the keys from the cluster (discovery + JWKS over its CA, as `ksa-auth up`
    configures it). `be2_file` reads KSA_JWKS_FILE = the cluster's JWKS plus a test RSA key
    and EC key we hold: the devcluster never lets its private keys out, and the cases that need
    a good signature over arbitrary headers and claims need a key be2 trusts.
    """

    cluster: DevCluster
    be2: Service
    be2_file: Service
    test_rsa: SigningKey
    test_ec: SigningKey
    ec_kid: str
    log_dir: Path

    def cluster_context(self) -> HostileContext:
        mint = cluster_minter(self.cluster)
        valid = mint(Mint())
        return HostileContext(
            valid=valid,
            trusted_jwk=self.jwk_of(valid),
            mint=mint,
            issuer=self.cluster.issuer,
            audience=self.cluster.api_audience,
            namespace="default",
            service_account="be-sa",
            now=time.time(),
            ec_kid=self.ec_kid,
        )

    def file_context(self) -> HostileContext:
        now = time.time()
        fields = {
            "now": now,
            "namespace": "default",
            "audience": self.cluster.api_audience,
            "issuer": self.cluster.issuer,
        }
        mint = local_minter(self.test_rsa, self.test_ec, fields)
        return HostileContext(
            valid=mint(Mint()),
            trusted_jwk=self.test_rsa.jwk(),
            mint=mint,
            issuer=self.cluster.issuer,
            audience=self.cluster.api_audience,
            namespace="default",
            service_account="be-sa",
            now=now,
            trusted=self.test_rsa,
            ec_kid=self.test_ec.kid,
        )

    def jwk_of(self, token: str) -> dict[str, str]:
        from tests.reliability.jws import b64url_decode

        kid = json.loads(b64url_decode(token.split(".")[0]))["kid"]
        jwks = self.cluster_jwks()
        return next(key for key in jwks["keys"] if key["kid"] == kid)

    def cluster_jwks(self) -> dict[str, Any]:
        with self.cluster.client() as client:
            response = client.get(
                "/openid/v1/jwks",
                headers={"Authorization": f"Bearer {self.cluster.pod('be2').token()}"},
            )
            response.raise_for_status()
            jwks: dict[str, Any] = response.json()
            return jwks

    def log_files(self) -> list[Path]:
        return [*devcluster_logs(self.cluster), *self.be2.log_paths, *self.be2_file.log_paths]


@pytest.fixture(scope="package")
def shared_stack(
    tmp_path_factory: pytest.TempPathFactory, tally: Tally, ledger: SecretLedger
) -> Iterator[SharedStack]:
    """Started once for the hostile, fuzz and load suites; their logs are scanned at the end."""
    root = tmp_path_factory.mktemp("reliability-shared")
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(start_devcluster(root / "devcluster"))
        # An EC key published next to the RSA ones (kube-apiserver takes several key files).
        ec_kid = cluster.admin("/admin/signing-keys/rotate", {"algorithm": "ES256"})["kid"]
        cluster.admin("/admin/signing-keys/rotate", {"algorithm": "RS256"})
        cluster.raw["_ec_kid"] = ec_kid
        tally.add("faults injected (key rotations, shared cluster)", 2)
        test_rsa, test_ec = SigningKey.rsa(), SigningKey.ec()
        logs = root / "logs"
        be2 = stack.enter_context(start_service("be2", be2_environment(cluster), logs))
        shared = SharedStack(cluster, be2, be2, test_rsa, test_ec, ec_kid, logs)
        jwks = shared.cluster_jwks()
        jwks["keys"] = [*jwks["keys"], test_rsa.jwk(), test_ec.jwk()]
        jwks_file = root / "jwks.json"
        jwks_file.write_text(json.dumps(jwks))
        shared.be2_file = stack.enter_context(
            start_service(
                "be2",
                be2_environment(cluster, KSA_JWKS_FILE=str(jwks_file)),
                logs,
                name="be2-file",
            )
        )
        register_logs(tally, *shared.log_files())
        yield shared
    # Every process has stopped: their logs are complete.
    assert_no_leaks(ledger, shared.log_files())


# --- per-test processes for the fault suites ---------------------------------------------------


@dataclass
class FaultBench:
    """A devcluster of its own, and the be/be2 processes a fault test starts against it."""

    cluster: DevCluster
    log_dir: Path
    stack: contextlib.ExitStack
    tally: Tally
    services: list[Service] = field(default_factory=list)

    def start(
        self, kind: str, env: dict[str, str], *, wait_ready: bool = True, name: str | None = None
    ) -> Service:
        service = self.stack.enter_context(
            start_service(kind, env, self.log_dir, wait_ready=wait_ready, name=name)
        )
        self.services.append(service)
        register_logs(self.tally, *service.log_paths)
        return service

    def fault(self, keys: str, delay_seconds: float = 0.0, **more: Any) -> None:
        self.cluster.admin("/admin/faults", {"keys": keys, "delay_seconds": delay_seconds, **more})
        if keys != "ok":
            self.tally.add("faults injected")

    def log_files(self) -> list[Path]:
        paths = devcluster_logs(self.cluster)
        for service in self.services:
            paths.extend(service.log_paths)
        return paths


@pytest.fixture
def bench(tmp_path: Path, tally: Tally, ledger: SecretLedger) -> Iterator[FaultBench]:
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(start_devcluster(tmp_path / "devcluster"))
        register_logs(tally, *devcluster_logs(cluster))
        bench = FaultBench(cluster, tmp_path / "logs", stack, tally)
        for pod in cluster.pods:
            ledger.add_token(pod.token(), "pod token")
        yield bench
    assert_no_leaks(ledger, bench.log_files())
