"""The emulator reads deploy/'s RBAC objects as `kubectl apply -k` would create them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devcluster.manifests import DEPLOY_OVERLAYS, load_rbac_objects
from devcluster.rbac import RBAC_KINDS
from devcluster.stack import OVERLAY, devcluster_arguments
from tests.deploy.manifests import OVERLAYS, Document, overlay_names


def authorization_view(documents: list[Document]) -> list[tuple[Any, ...]]:
    """What RBAC decides with: kind, name, namespace, rules, role reference, subjects."""
    view = []
    for doc in documents:
        if doc.get("kind") not in RBAC_KINDS:
            continue
        metadata = doc.get("metadata") or {}
        view.append(
            (
                doc["kind"],
                metadata.get("name"),
                metadata.get("namespace"),
                repr(doc.get("rules")),
                repr(doc.get("roleRef")),
                repr(doc.get("subjects")),
            )
        )
    return sorted(view)


@pytest.mark.parametrize("overlay", overlay_names())
def test_emulator_reads_each_overlays_rbac_as_kustomize_renders_it(
    overlay: str, rendered_overlays: dict[str, list[Document]]
) -> None:
    ours = load_rbac_objects([OVERLAYS / overlay])
    assert authorization_view(ours) == authorization_view(rendered_overlays[overlay])


def test_the_tokenreview_overlay_has_rbac_objects_to_compare() -> None:
    # Not a vacuous comparison: this overlay binds be2-sa to the TokenReview role.
    kinds = sorted(d["kind"] for d in load_rbac_objects([OVERLAYS / "hardened-tokenreview"]))
    assert kinds == ["ClusterRole", "ClusterRoleBinding"]


def test_make_run_enforces_the_docker_desktop_overlay() -> None:
    # `make run` is the seed's setup on Docker Desktop: namespace default, JWKS.
    assert DEPLOY_OVERLAYS == OVERLAYS
    arguments = devcluster_arguments(Path("/state"), 3607)
    assert arguments[arguments.index("--rbac") + 1] == str(OVERLAY)
    assert OVERLAY == OVERLAYS / "docker-desktop"


def test_a_broken_manifest_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "rbac.yaml"
    bad.write_text("kind: ClusterRole\nmetadata: {name: x\n")
    with pytest.raises(ValueError, match=r"rbac\.yaml: not valid YAML \(line 3\)"):
        load_rbac_objects([bad])
    with pytest.raises(ValueError, match="RBAC manifests not found"):
        load_rbac_objects([tmp_path / "missing.yaml"])
    with pytest.raises(ValueError, match=r"holds no kustomization\.yaml"):
        load_rbac_objects([tmp_path])
