"""Render deploy/k8s overlays with the real kustomize and validate them against OpenAPI schemas."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.deploy import cert_manager

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = K8S / "overlays"

# The newest schemas kubernetes-validate ships (a current release), and the oldest minor the
# large providers still run, so a field only recent clusters know is caught too.
SCHEMA_VERSIONS = (kubernetes_validate.latest_version(), "1.30.0")

Document = dict[str, Any]


class RenderError(Exception):
    """kustomize is missing or refused the overlay; the message says which and why."""


def overlay_names() -> list[str]:
    """Every directory under deploy/k8s/overlays that holds a kustomization.yaml."""
    return sorted(p.parent.name for p in OVERLAYS.glob("*/kustomization.yaml"))


def kustomize_command() -> list[str]:
    """`kubectl kustomize` (what `kubectl apply -k` runs), else a standalone `kustomize build`."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build"]
    raise RenderError(
        "neither kubectl nor kustomize is on PATH: the deploy tests render the overlays with "
        "the real kustomize (install kubectl >= 1.27, or kustomize >= 5)"
    )


def render(directory: Path) -> list[Document]:
    """The documents `kubectl apply -k directory` would send, parsed."""
    result = subprocess.run(
        [*kustomize_command(), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(f"kustomize failed on {directory}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def identify(doc: Document) -> str:
    """`kind/name` (with the namespace when set), for messages."""
    metadata = doc.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{doc.get('kind', '?')}/{where}{metadata.get('name', '?')}"


def schema_problems(
    docs: Iterable[Document], versions: Iterable[str] = SCHEMA_VERSIONS, strict: bool = True
) -> list[str]:
    """Every document against the Kubernetes OpenAPI schema of each version.

    Strict schemas reject properties the API does not define, so a misspelt field fails here
    instead of being silently dropped by the API server. An unknown kind or apiVersion (no
    schema) is a problem too, not a warning. cert-manager's kinds are checked against the strict
    schemas of tests/deploy/cert_manager.py.
    """
    problems: list[str] = []
    docs = list(docs)
    for doc in docs:
        if doc.get("apiVersion") == cert_manager.API_VERSION:
            problems += cert_manager.cert_manager_problems_of(doc, identify(doc))
    docs = [doc for doc in docs if doc.get("apiVersion") != cert_manager.API_VERSION]
    for version in versions:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=strict)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path) or "(top level)"
                problems.append(f"{identify(doc)} @ {version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{identify(doc)} @ {version}: {error.message}")
    return problems


def find(docs: Iterable[Document], kind: str, name: str | None = None) -> Iterator[Document]:
    """The documents of a kind (and name)."""
    for doc in docs:
        if doc.get("kind") == kind and (name is None or doc["metadata"].get("name") == name):
            yield doc


def one(docs: Iterable[Document], kind: str, name: str) -> Document | None:
    """The single document of that kind and name, or None."""
    return next(find(docs, kind, name), None)
