"""The TokenSource contract, run against every adapter: the kubelet volume and the in-memory fake.

To add an adapter, write a context manager yielding a `TokenSourceCase` and add it to `CASES`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.memory_token_source import InMemoryTokenSource
from adapters.projected_token_file import ProjectedTokenFile
from domain.errors import TokenUnavailable
from domain.ports import TokenSource
from tests.devcluster_harness import DevCluster


@dataclass
class TokenSourceCase:
    """An adapter under test and hooks that act on where its token comes from."""

    source: TokenSource
    # What the source should return right now (read independently of the adapter).
    expected: Callable[[], str]
    # Replace the token at the source (e.g. the kubelet's `..data` swap); return the new one.
    rotate: Callable[[], str]
    # Make the source unreadable (the token file gone, the fake emptied).
    breakage: Callable[[], None]
    # A source of the same kind that has never been readable.
    never_readable: Callable[[], TokenSource]
    # After `breakage`: the last good token (a real volume) or TokenUnavailable (the fake).
    keeps_last_good: bool


@contextlib.contextmanager
def projected_file_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[TokenSourceCase]:
    cluster: DevCluster = request.getfixturevalue("devcluster")
    pod = cluster.pod("be")
    source = ProjectedTokenFile(pod.token_file)

    def rotate() -> str:
        before = pod.token()
        cluster.admin("/admin/tokens/rotate")
        after = pod.token()
        assert after != before, "the devcluster rewrote the same token"
        return after

    def breakage() -> None:
        # The volume without its `..data` link: `token` dangles, as between a failed write
        # and the kubelet's next attempt.
        (pod.volume / "..data").unlink()

    try:
        yield TokenSourceCase(
            source=source,
            expected=pod.token,
            rotate=rotate,
            breakage=breakage,
            never_readable=lambda: ProjectedTokenFile(tmp_path / "no-volume" / "token"),
            keeps_last_good=True,
        )
    finally:
        # Leave a whole volume behind for the next test (the atomic writer recreates `..data`).
        cluster.admin("/admin/tokens/rotate")


@contextlib.contextmanager
def in_memory_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenSourceCase]:
    cluster: DevCluster = request.getfixturevalue("devcluster")
    source = InMemoryTokenSource(cluster.mint("be-sa"))
    last_good: list[str] = [source.token or ""]

    def rotate() -> str:
        source.token = cluster.mint("be-sa")
        last_good[0] = source.token
        return source.token

    def breakage() -> None:
        # The fake has no "last good token": emptied, it is simply unavailable.
        source.token = None

    yield TokenSourceCase(
        source=source,
        expected=lambda: last_good[0],
        rotate=rotate,
        breakage=breakage,
        never_readable=InMemoryTokenSource,
        keeps_last_good=False,
    )


CASES: dict[
    str, Callable[[pytest.FixtureRequest, Path], contextlib.AbstractContextManager[TokenSourceCase]]
] = {
    "projected_token_file": projected_file_case,
    "in_memory": in_memory_case,
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenSourceCase]:
    with CASES[request.param](request, tmp_path) as made:
        yield made


def test_current_token_is_the_sources_jwt(case: TokenSourceCase) -> None:
    token = case.source.current_token()
    assert token == case.expected()
    assert token.count(".") == 2
    assert token == token.strip()


def test_a_rotated_token_is_returned_at_once(case: TokenSourceCase) -> None:
    first = case.source.current_token()
    second = case.rotate()
    assert second != first
    assert case.source.current_token() == second


def test_a_broken_source_keeps_the_last_good_token_or_says_unavailable(
    case: TokenSourceCase,
) -> None:
    good = case.source.current_token()
    case.breakage()
    if case.keeps_last_good:
        assert case.source.current_token() == good
    else:
        with pytest.raises(TokenUnavailable):
            case.source.current_token()


def test_never_readable_is_token_unavailable(case: TokenSourceCase) -> None:
    source = case.never_readable()
    with pytest.raises(TokenUnavailable) as raised:
        source.current_token()
    assert raised.value.reason == "token_unavailable"
    if isinstance(source, ProjectedTokenFile):
        assert str(source.path) in raised.value.detail
        assert "No such file or directory" in raised.value.detail
