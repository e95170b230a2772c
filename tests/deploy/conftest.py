"""Fixtures for the deploy tests: every overlay rendered once per session by the real kustomize."""

from __future__ import annotations

import copy

import pytest

from tests.deploy.manifests import OVERLAYS, Document, RenderError, overlay_names, render


@pytest.fixture(scope="session")
def rendered_overlays() -> dict[str, list[Document]]:
    try:
        return {name: render(OVERLAYS / name) for name in overlay_names()}
    except RenderError as error:
        pytest.fail(str(error))


@pytest.fixture
def rendered(rendered_overlays: dict[str, list[Document]]) -> dict[str, list[Document]]:
    """A private deep copy: tests may edit it without touching other tests' manifests."""
    return copy.deepcopy(rendered_overlays)
