"""The RBAC objects of plain YAML files or a kustomization (resources, components, namespace)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devcluster.rbac import RBAC_KINDS

__all__ = ["DEPLOY_OVERLAYS", "load_rbac_objects", "read_documents"]

# deploy/k8s/overlays of this checkout (devcluster is only ever installed from one).
DEPLOY_OVERLAYS = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "overlays"
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

Document = dict[str, Any]


def read_documents(path: Path) -> list[Document]:
    """Every YAML document of a file; one clear ValueError for anything unreadable."""
    # Imported here: only the emulator reads manifests (pyyaml is in the devcluster extra).
    import yaml  # type: ignore[import-untyped]

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
    for document in documents:
        if not isinstance(document, dict):
            raise ValueError(f"{path}: every YAML document must be a Kubernetes object")
    return documents


def load_rbac_objects(paths: Iterable[Path]) -> list[Document]:
    """The ClusterRoles, Roles and bindings `kubectl apply -f FILE` or `kubectl apply -k DIR`
    would create from each path: a YAML file, or a directory holding a kustomization."""
    objects: list[Document] = []
    for path in paths:
        if path.is_dir():
            documents = _kustomize(path, ())
        elif path.exists():
            documents = read_documents(path)
        else:
            raise ValueError(f"RBAC manifests not found: {path}")
        objects.extend(d for d in documents if d.get("kind") in RBAC_KINDS)
    return objects


def _kustomization(directory: Path) -> Document:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            (document,) = read_documents(directory / name) or [{}]
            return document
    raise ValueError(f"{directory} holds no kustomization.yaml")


def _kustomize(directory: Path, seen: tuple[Path, ...]) -> list[Document]:
    """What `kubectl kustomize` emits, as far as RBAC goes: `resources` (files and
    directories) and `components`, then this level's `namespace` (patches are not applied)."""
    directory = directory.resolve()
    if directory in seen:
        raise ValueError(f"{directory}: kustomization cycle")
    kustomization = _kustomization(directory)
    documents: list[Document] = []
    for member in ("resources", "components"):
        entries = kustomization.get(member) or []
        if not isinstance(entries, list):
            raise ValueError(f"{directory}: {member} must be a list")
        for entry in entries:
            target = directory / str(entry)
            if target.is_dir():
                documents.extend(_kustomize(target, (*seen, directory)))
            else:
                documents.extend(read_documents(target))
    namespace = kustomization.get("namespace")
    if isinstance(namespace, str) and namespace:
        _set_namespace(documents, namespace)
    return documents


def _set_namespace(documents: list[Document], namespace: str) -> None:
    """kustomize's namespace transformer: namespaced objects move to `namespace`, and binding
    subjects naming one of these ServiceAccounts (in its old namespace) follow it."""
    accounts = {
        (str(d["metadata"].get("name")), d["metadata"].get("namespace") or "default")
        for d in documents
        if d.get("kind") == "ServiceAccount" and isinstance(d.get("metadata"), dict)
    }
    for document in documents:
        metadata = document.setdefault("metadata", {})
        if document.get("kind") not in ("ClusterRole", "ClusterRoleBinding", "Namespace"):
            metadata["namespace"] = namespace
        if document.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        for subject in document.get("subjects") or []:
            key = (str(subject.get("name")), subject.get("namespace") or "default")
            if subject.get("kind") == "ServiceAccount" and key in accounts:
                subject["namespace"] = namespace
