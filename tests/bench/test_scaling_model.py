"""bench/scaling.py: its virtual clock and request counts agree with the key provider's schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.cluster_jwks import ClusterJwksConfig
from bench import scaling
from tests.devcluster_harness import DevCluster, start_devcluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with start_devcluster(tmp_path_factory.mktemp("scaling") / "devcluster") as running:
        yield running


@pytest.mark.e2e
def test_three_replicas_without_jitter_refresh_every_240_virtual_seconds(
    cluster: DevCluster,
) -> None:
    bench = scaling.Bench(cluster, quick=True)  # a quarter of an hour
    run = asyncio.run(scaling.measure_keys(bench, "steady", 3, jitter=False))
    # Refreshes at 240, 480 and 720 s, each discovery + JWKS, all three in the same second.
    assert run.counted == 3 * 2 + 3 * 3 * 2
    assert run.per_hour() == 3 * 3 * 2 * 4  # a quarter of an hour
    assert sorted({round(t - run.start) for t, _ in run.sent}) == [0, 240, 480, 720]
    assert run.peak_per_second() == 6


@pytest.mark.e2e
def test_an_outage_is_retried_on_the_backoff_schedule(cluster: DevCluster) -> None:
    bench = scaling.Bench(cluster, quick=True)
    run = asyncio.run(scaling.measure_keys(bench, "outage", 1, jitter=False))
    after = [round(t - run.start, 2) for t, _ in run.sent if t > run.start]
    # The refresh at 240 s fails at discovery; then 5, 10, 20, ... s later, capped at 300 s,
    # whatever calls arrive meanwhile (one every 10 s here).
    assert after == [240, 245, 255, 275, 315, 395, 555, 855]


def test_the_formulas_at_their_limits() -> None:
    config = ClusterJwksConfig(discovery_url="https://a/", issuers=frozenset({"i"}))
    assert scaling.key_formula("steady", 100, config) == 100 * 30
    assert scaling.key_formula("flood", 1, config) == 2 * 3600 / config.cooldown_seconds
    # TokenReview: one holder reuses its answer for 10 s; many ask on every call.
    assert scaling.review_formula(1) == pytest.approx(20 / 10)
    assert scaling.review_formula(10**6) == pytest.approx(20, rel=1e-3)


def test_virtual_time_jumps_to_the_next_wake() -> None:
    async def scenario() -> list[float]:
        clock = scaling.VirtualTime(1000.0)
        woke: list[float] = []

        async def sleeper(seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append(clock())

        tasks = [asyncio.ensure_future(sleeper(s)) for s in (30.0, 10.0, 10.0)]
        await asyncio.sleep(0)
        while clock.next_wake() is not None:
            clock.advance()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return woke

    assert asyncio.run(scenario()) == [1010.0, 1010.0, 1030.0]


def test_results_go_between_the_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "SCALING.md"
    doc.write_text("before\n<!-- scaling:begin -->\nold\n<!-- scaling:end -->\nafter\n")
    monkeypatch.setattr(scaling, "DOC", doc)
    scaling.write_doc([], 1.0)
    text = doc.read_text()
    assert text.startswith("before\n<!-- scaling:begin -->\n| situation |")
    assert "old" not in text
    assert text.endswith("<!-- scaling:end -->\nafter\n")
    # Written again over what it wrote, and into an empty block.
    scaling.write_doc([], 1.0)
    assert doc.read_text() == text
    doc.write_text("<!-- scaling:begin -->\n<!-- scaling:end -->\n")
    scaling.write_doc([], 1.0)
    assert "| situation |" in doc.read_text()
