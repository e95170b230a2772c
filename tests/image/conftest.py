"""Fixtures for the image tests: the image built once per session, its filesystem mounted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.image.containers import BASE, IMAGE, build_image, podman

# What deploy/image.sh printed (its phases and their times), shown at the end of the run.
_BUILD_REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _BUILD_REPORT:
        terminalreporter.section("image build (deploy/image.sh)")
        for line in _BUILD_REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def image() -> str:
    """The image built from deploy/Dockerfile by deploy/image.sh (a failure fails the tests)."""
    try:
        _BUILD_REPORT.extend(build_image().splitlines())
    except AssertionError as error:
        pytest.fail(str(error), pytrace=False)
    return IMAGE


def _mounted(name: str) -> Iterator[Path]:
    root = Path(podman("image", "mount", name).stdout.strip())
    try:
        yield root
    finally:
        podman("image", "unmount", name, check=False)


@pytest.fixture(scope="session")
def image_root(image: str) -> Iterator[Path]:
    """The image's root filesystem, mounted read-only on the host for inspection."""
    yield from _mounted(image)


@pytest.fixture(scope="session")
def base_root(image: str) -> Iterator[Path]:
    """The base image's root filesystem, to compare the image's files with."""
    yield from _mounted(BASE)
