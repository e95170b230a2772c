"""Shared pytest fixtures: a running devcluster per module, or a fresh one per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devcluster_harness import DevCluster, start_devcluster


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio, as the services do; never on trio, which selenium brings in."""
    return "asyncio"


@pytest.fixture(scope="module")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """One `ksa-auth devcluster` process shared by a test module (do not break it)."""
    with start_devcluster(tmp_path_factory.mktemp("devcluster")) as cluster:
        yield cluster


@pytest.fixture
def fresh_devcluster(tmp_path: Path) -> Iterator[DevCluster]:
    """A devcluster of its own for a test that rotates keys, deletes pods or sets faults."""
    with start_devcluster(tmp_path / "devcluster") as cluster:
        yield cluster
