"""The emulated cluster: its state, with the API server's parts, the kubelet and the keys wired."""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.fake_keyset import API_AUDIENCE, ISSUER, Algorithm, FakeKeySet
from devcluster.issuer import Issuer, timestamp
from devcluster.kubelet import (
    DEFAULT_PODS,
    Kubelet,
    Pod,
    PodSpec,
    ProjectedToken,
    schedule_pod,
    write_private,
)
from devcluster.rbac import Authorizer
from devcluster.registry import Registry
from devcluster.tls import ServingFiles, serving_names, write_serving_secret, write_tls_material
from devcluster.tokenfile import ADMIN_USER, MASTERS, RequestAuthenticator, StaticToken
from devcluster.tokenreview import Authenticator, PublicKeys, RegistryObjects
from domain.ports import Clock

__all__ = ["KEY_FAULTS", "KUBECONFIG_NAME", "REVIEW_FAULTS", "AdjustableClock", "Cluster", "Faults"]

# Written by devcluster.kubeconfig beside cluster.json.
KUBECONFIG_NAME = "kubeconfig"

# The workloads that serve TLS with a certificate from our CA, as cert-manager would issue it.
SERVING_APPS = frozenset({"be2"})
KEY_FAULTS = ("ok", "outage", "slow", "garbage", "oversized", "malformed", "redirect")
REVIEW_FAULTS = ("ok", "outage", "slow")
# A graceful pod delete without a grace period: the pod spec's terminationGracePeriodSeconds
# default.
DEFAULT_GRACE_SECONDS = 30


class AdjustableClock:
    """The wall clock plus an offset that only moves forward: the admin API advances it, so
    a test sees 90 s of cluster time pass without waiting for them."""

    def __init__(self, now: Clock = time.time) -> None:
        self._now = now
        self.offset = 0.0

    def __call__(self) -> float:
        return self._now() + self.offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds
        return self()


@dataclass
class Faults:
    """What the admin API has made go wrong: key endpoints, TokenReview, and how slowly."""

    keys: str = "ok"
    delay_seconds: float = 0.0
    tokenreview: str = "ok"
    endpoints: tuple[str, ...] = ("discovery", "jwks")

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "delay_seconds": self.delay_seconds,
            "tokenreview": self.tokenreview,
            "endpoints": list(self.endpoints),
        }


class Cluster:
    """An in-memory cluster: service accounts, pods on one node, a signing keyset, and the
    kubelet that keeps each pod's projected tokens fresh on disk.

    `tokens` answers TokenRequest, `authenticator` TokenReview (and every API caller),
    `kubelet` writes the volumes; `registry` holds the objects they all look up.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        token_ttl: int = 3607,
        pods: Sequence[PodSpec] = DEFAULT_PODS,
        algorithm: Algorithm = "RS256",
        clock: Clock | None = None,
        rbac: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        if token_ttl < 1:
            raise ValueError("--token-ttl must be at least 1 second")
        self.state_dir = state_dir.resolve()
        self.token_ttl = token_ttl
        clock = clock or AdjustableClock()
        self.clock = clock
        # kube's bootstrap policy plus the RBAC objects given (what `kubectl apply` stored).
        self.authorizer = Authorizer(rbac)
        self.issuer = ISSUER
        self.api_audiences: tuple[str, ...] = (API_AUDIENCE,)
        self.keyset = FakeKeySet(
            algorithm, issuer=self.issuer, api_audiences=self.api_audiences, clock=clock
        )
        self.admin_token = secrets.token_urlsafe(32)
        self.counters: collections.Counter[str] = collections.Counter()
        self.faults = Faults()
        self.url = ""
        self.admin_url = ""
        self.registry = Registry()
        self.serving: dict[tuple[str, str], ServingFiles] = {}
        self.tokens = Issuer(self.keyset, self.registry, self.api_audiences, self.counters, clock)
        # The kubeconfig's administrator; never the admin API's token.
        self.cluster_admin = StaticToken(ADMIN_USER, (MASTERS,))
        self.authenticator = RequestAuthenticator(
            (self.cluster_admin,),
            Authenticator(
                self.issuer,
                self.api_audiences,
                PublicKeys.of_keyset(self.keyset),
                RegistryObjects(self.registry, clock),
                clock,
            ),
        )

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls = write_tls_material(self.state_dir, clock)
        self.kubelet = Kubelet(
            self.registry.pods, self._projected_token, self.tls.ca_pem, self.counters, clock
        )
        # Pod names are new on every start: volumes of an earlier run would only mislead.
        shutil.rmtree(self.state_dir / "pods", ignore_errors=True)
        for spec in pods:
            self.add_pod(spec)

    def add_pod(self, spec: PodSpec) -> Pod:
        """Schedule a pod: its service account exists, its projected volumes are written."""
        self.registry.service_account(spec.namespace, spec.service_account, create=True)
        pod = schedule_pod(spec, self.state_dir / "pods", self.api_audiences, self.token_ttl)
        self.registry.pods[(pod.namespace, pod.name)] = pod
        for projection in pod.projections:
            self.kubelet.write(pod, projection)
        if spec.app in SERVING_APPS:
            self._issue_serving_certificate(pod, spec.app)
        return pod

    def _issue_serving_certificate(self, pod: Pod, app: str) -> ServingFiles:
        # The Secret cert-manager keeps for the app's Service, mounted into its pod.
        files = write_serving_secret(
            pod.volume.parent / f"{app}-tls",
            self.tls.authority,
            serving_names(app, pod.namespace),
            self.clock,
        )
        self.serving[(pod.namespace, pod.name)] = files
        return files

    def renew_serving_certificates(self) -> int:
        """Issue every serving certificate again (a new key and serial), as a renewal would."""
        for (namespace, name), files in list(self.serving.items()):
            if (namespace, name) in self.registry.pods:
                pod = self.registry.pods[(namespace, name)]
                self._issue_serving_certificate(pod, files.names[0])
        self.counters["serving_certificates_renewed"] += 1
        return len(self.serving)

    def terminate_pod(
        self, namespace: str, name: str, grace_seconds: int = DEFAULT_GRACE_SECONDS
    ) -> Pod:
        """A graceful delete: the pod gets deletionTimestamp = now + grace (whole seconds, as
        stored) and stays; its tokens authenticate until 60 s past that time (claims.go)."""
        pod = self.registry.find_pod(namespace, name)
        if pod.deletion_timestamp is None:
            pod.deletion_timestamp = int(self.clock() + grace_seconds)
            self.counters["pods_terminated"] += 1
        return pod

    def remove_pod(self, namespace: str, name: str) -> Pod:
        """The pod object is gone: its tokens stop validating at once and the kubelet stops
        refreshing them."""
        pod = self.registry.find_pod(namespace, name)
        del self.registry.pods[(namespace, name)]
        self.counters["pods_removed"] += 1
        return pod

    def _projected_token(self, pod: Pod, projection: ProjectedToken) -> tuple[str, float]:
        # The kubelet's TokenRequest for a projection: bound to the pod, as it asked.
        return self.tokens.issue(
            pod.namespace,
            pod.service_account,
            audiences=projection.audiences,
            expiration_seconds=projection.expiration_seconds,
            for_pod=pod,
        )

    # --- what the cluster tells its users ---------------------------------------------------

    def pod_json(self, pod: Pod) -> dict[str, Any]:
        extra = {
            p.audiences[0]: str(p.volume / "token") for p in pod.projections[1:] if p.audiences
        }
        account = self.registry.service_account(pod.namespace, pod.service_account)
        return {
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
            "service_account": pod.service_account,
            "service_account_uid": account.uid,
            "node": pod.node,
            "node_uid": self.registry.node.uid,
            "deletion_timestamp": (
                None if pod.deletion_timestamp is None else timestamp(pod.deletion_timestamp)
            ),
            "volume": str(pod.volume),
            "token_file": str(pod.volume / "token"),
            "ca_file": str(pod.volume / "ca.crt"),
            "namespace_file": str(pod.volume / "namespace"),
            "extra_tokens": extra,
            "tls": self._serving_json(pod),
        }

    def _serving_json(self, pod: Pod) -> dict[str, Any] | None:
        files = self.serving.get((pod.namespace, pod.name))
        if files is None:
            return None
        return {
            "cert_file": str(files.cert_file),
            "key_file": str(files.key_file),
            "ca_file": str(files.ca_file),
            "names": list(files.names),
        }

    def cluster_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ca_file": str(self.tls.ca_file),
            "issuer": self.issuer,
            "api_audience": self.api_audiences[0],
            "discovery_url": f"{self.url}/.well-known/openid-configuration",
            "jwks_url": f"{self.url}/openid/v1/jwks",
            "admin_url": self.admin_url,
            "admin_token": self.admin_token,
            "kubeconfig": str(self.state_dir / KUBECONFIG_NAME),
            "pid": os.getpid(),
            "token_ttl": self.token_ttl,
            "pods": [self.pod_json(p) for p in self.registry.pods.values()],
        }

    def write_cluster_json(self) -> Path:
        """Write DIR/cluster.json atomically (temp file + rename), readable by the user only:
        it holds the admin token."""
        path = self.state_dir / "cluster.json"
        tmp = self.state_dir / f".cluster.json.{os.getpid()}.tmp"
        write_private(tmp, json.dumps(self.cluster_json(), indent=2).encode() + b"\n")
        os.replace(tmp, path)
        return path
