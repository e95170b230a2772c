"""The emulator's kubeconfig, as kind writes one: the administrator and each service account."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from devcluster.cluster import KUBECONFIG_NAME, Cluster
from devcluster.kubelet import write_private

__all__ = ["ADMIN_CONTEXT", "CLUSTER_NAME", "kubeconfig", "service_account_context", "write"]

CLUSTER_NAME = "devcluster"
ADMIN_CONTEXT = "devcluster-admin"


def service_account_context(namespace: str, name: str) -> str:
    """The context that acts as the service account `namespace/name`."""
    return f"{CLUSTER_NAME}-{namespace}-{name}"


def kubeconfig(cluster: Cluster) -> dict[str, Any]:
    """A clientcmd v1 Config: one cluster (URL and CA), the administrator as the current context,
    and a context per service account whose pod runs here.

    A service account's user reads its pod's projected API token (`tokenFile`, which client-go
    re-reads), so the kubelet's rotations reach kubectl too. The admin API's token is no
    credential of the API server and is never written here.
    """
    ca_data = base64.b64encode(cluster.tls.ca_pem).decode()
    users: list[dict[str, Any]] = [
        {"name": cluster.cluster_admin.username, "user": {"token": cluster.cluster_admin.token}}
    ]
    contexts: list[dict[str, Any]] = [_context(ADMIN_CONTEXT, cluster.cluster_admin.username)]
    seen: set[tuple[str, str]] = set()
    for pod in cluster.registry.pods.values():
        account = (pod.namespace, pod.service_account)
        if account in seen:
            continue
        seen.add(account)
        user = f"system:serviceaccount:{pod.namespace}:{pod.service_account}"
        users.append({"name": user, "user": {"tokenFile": str(pod.token_file)}})
        contexts.append(_context(service_account_context(*account), user, pod.namespace))
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": cluster.url, "certificate-authority-data": ca_data},
            }
        ],
        "users": users,
        "contexts": contexts,
        "current-context": ADMIN_CONTEXT,
    }


def _context(name: str, user: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "name": name,
        "context": {"cluster": CLUSTER_NAME, "user": user, "namespace": namespace},
    }


def write(cluster: Cluster) -> Path:
    """Write DIR/kubeconfig atomically, readable by the user only: it holds the admin's token.

    JSON is YAML, and kubectl reads either.
    """
    path = cluster.state_dir / KUBECONFIG_NAME
    tmp = cluster.state_dir / f".{KUBECONFIG_NAME}.{os.getpid()}.tmp"
    write_private(tmp, json.dumps(kubeconfig(cluster), indent=2).encode() + b"\n")
    os.replace(tmp, path)
    return path
