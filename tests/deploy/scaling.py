"""Scale-out policy: workers and their resources, the metrics volume, autoscaler, budget, spread."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.deploy.manifests import Document, find, identify
from tests.deploy.policy import (
    SERVICE_ACCOUNTS,
    container,
    literal_env,
    namespace_of,
    one,
    pod_labels,
    pod_spec,
    selector_matches,
    settings_of,
)

METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
MIN_REPLICAS = 2
# A worker is one Python process: it uses at most one core, and needs at least half of one to
# serve at the rate docs/PERFORMANCE.md measures; about 96 Mi of memory a worker at start.
CPU_LIMIT_PER_WORKER = (0.5, 1.0)
MEMORY_REQUEST_PER_WORKER = 96 * 2**20

_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def cores(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity (`500m`, `2`) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def byte_count(quantity: str | int) -> int:
    """A Kubernetes memory quantity (`96Mi`, `1G`, `1048576`) in bytes."""
    text = str(quantity)
    for suffix, factor in _SUFFIXES.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def worker_problems(docs: list[Document]) -> list[str]:
    """Every overlay: resources match KSA_WORKERS; several workers share a writable emptyDir."""
    problems: list[str] = []
    for service in SERVICE_ACCOUNTS:
        deployment = one(docs, "Deployment", service)
        spec = container(deployment, service) if deployment is not None else None
        settings = settings_of(spec) if spec is not None else "missing"
        if deployment is None or spec is None or isinstance(settings, str):
            continue  # reported by the baseline checks
        where = f"{identify(deployment)}: container {service}"
        problems += [f"{where}: {p}" for p in _resource_problems(spec, settings.workers)]
        problems += [f"{where}: {p}" for p in _metrics_volume_problems(deployment, spec)]
        if settings.workers > 1 and METRICS_VARIABLE not in literal_env(spec):
            problems.append(
                f"{where}: KSA_WORKERS is {settings.workers} but {METRICS_VARIABLE} is not set, "
                "so /metrics would answer for one worker"
            )
    return problems


def _resource_problems(spec: Mapping[str, Any], workers: int) -> list[str]:
    resources = spec.get("resources") or {}
    limit = (resources.get("limits") or {}).get("cpu")
    request = (resources.get("requests") or {}).get("memory")
    if limit is None or request is None:
        return []  # reported by the baseline checks
    low, high = (workers * share for share in CPU_LIMIT_PER_WORKER)
    problems = []
    if not low <= cores(limit) <= high:
        problems.append(
            f"resources.limits.cpu {limit} does not match {workers} worker(s): "
            f"expected {low:g} to {high:g} cores"
        )
    if byte_count(request) < workers * MEMORY_REQUEST_PER_WORKER:
        problems.append(
            f"resources.requests.memory {request} is less than {workers} worker(s) x 96Mi"
        )
    return problems


def _metrics_volume_problems(deployment: Document, spec: Mapping[str, Any]) -> list[str]:
    directory = literal_env(spec).get(METRICS_VARIABLE)
    if directory is None:
        return []
    volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes") or []}
    for mount in spec.get("volumeMounts") or []:
        if mount.get("mountPath", "").rstrip("/") == directory.rstrip("/"):
            volume = volumes.get(mount.get("name"), {})
            if "emptyDir" in volume and not mount.get("readOnly"):
                return []
    return [
        f"{METRICS_VARIABLE} {directory} is not a writable emptyDir mount "
        "(the root filesystem is read-only)"
    ]


def scaling_problems(docs: list[Document]) -> list[str]:
    """Hardened: each Deployment under a CPU autoscaler, a disruption budget, spread by node."""
    problems: list[str] = []
    for service in SERVICE_ACCOUNTS:
        deployment = one(docs, "Deployment", service)
        if deployment is None:
            continue  # reported by the baseline checks
        problems += _autoscaler_problems(docs, deployment)
        problems += _budget_problems(docs, deployment)
        problems += _spread_problems(deployment)
    return problems


def _autoscaler_problems(docs: list[Document], deployment: Document) -> list[str]:
    where = identify(deployment)
    name = deployment["metadata"]["name"]
    autoscalers = [
        hpa
        for hpa in find(docs, "HorizontalPodAutoscaler")
        if namespace_of(hpa) == namespace_of(deployment)
        and hpa["spec"]["scaleTargetRef"].get("kind") == "Deployment"
        and hpa["spec"]["scaleTargetRef"].get("name") == name
    ]
    if len(autoscalers) != 1:
        return [f"{where}: {len(autoscalers)} HorizontalPodAutoscalers target it, expected 1"]
    spec = autoscalers[0]["spec"]
    problems = []
    if int(spec.get("minReplicas", 1)) < MIN_REPLICAS:
        problems.append(f"{where}: its autoscaler's minReplicas is below {MIN_REPLICAS}")
    resources = [m.get("resource", {}).get("name") for m in spec.get("metrics") or []]
    if "cpu" not in resources:
        problems.append(f"{where}: its autoscaler does not scale on cpu")
    if "replicas" in deployment["spec"]:
        problems.append(f"{where}: sets replicas, which an apply would reset under its autoscaler")
    return problems


def _budget_problems(docs: list[Document], deployment: Document) -> list[str]:
    labels = pod_labels(deployment)
    budgets = [
        pdb
        for pdb in find(docs, "PodDisruptionBudget")
        if namespace_of(pdb) == namespace_of(deployment)
        and selector_matches(pdb["spec"].get("selector") or {}, labels)
    ]
    where = identify(deployment)
    if len(budgets) != 1:
        return [f"{where}: {len(budgets)} PodDisruptionBudgets select its pods, expected 1"]
    spec = budgets[0]["spec"]
    if spec.get("maxUnavailable") != 1 or "minAvailable" in spec:
        return [f"{where}: its PodDisruptionBudget is not maxUnavailable: 1"]
    return []


def _spread_problems(deployment: Document) -> list[str]:
    labels = pod_labels(deployment)
    for constraint in pod_spec(deployment).get("topologySpreadConstraints") or []:
        if constraint.get("topologyKey") == "kubernetes.io/hostname" and selector_matches(
            constraint.get("labelSelector") or {}, labels
        ):
            return []
    return [f"{identify(deployment)}: no topologySpreadConstraint spreads its pods over nodes"]
