"""TokenRequest: kube-apiserver minting bound service account tokens, with its checks and words."""

from __future__ import annotations

import collections
import datetime
import json
from dataclasses import dataclass
from typing import Any, Unpack

from adapters.fake_keyset import FakeKeySet, TokenOptions
from devcluster.kubelet import Pod
from devcluster.registry import Registry
from devcluster.status import ApiError, bad_request, not_found
from domain.claims import ObjectRef
from domain.ports import Clock

__all__ = ["MAX_TOKEN_SECONDS", "MIN_TOKEN_SECONDS", "Issuer", "timestamp"]

# pkg/apis/authentication/validation: TokenRequest expirationSeconds bounds.
MIN_TOKEN_SECONDS = 10 * 60
MAX_TOKEN_SECONDS = 1 << 32
_WRONG_KIND = "the body of the request is not a TokenRequest object"


def timestamp(seconds: float) -> str:
    """A metav1.Time as JSON shows it: RFC 3339, whole seconds, UTC."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Issuer:
    """Mints tokens for the registry's service accounts as kube-apiserver's TokenRequest does.

    FakeKeySet builds the claims (claims.go) and signs them; this adds what the API server
    knows: the service account's UID, the pod's node, and the checks of the request itself.
    """

    keyset: FakeKeySet
    registry: Registry
    api_audiences: tuple[str, ...]
    counters: collections.Counter[str]
    clock: Clock

    def issue(
        self,
        namespace: str,
        service_account: str,
        *,
        for_pod: Pod | None = None,
        key: str | None = None,
        **options: Unpack[TokenOptions],
    ) -> tuple[str, float]:
        """Mint a token as TokenRequest does; return it and status.expirationTimestamp."""
        account = self.registry.service_account(namespace, service_account)
        if not options.get("audiences"):
            options["audiences"] = self.api_audiences
        if for_pod is not None:
            # ServiceAccountTokenPodNodeInfo: a pod-bound token also names the pod's node.
            options["pod"] = ObjectRef(for_pod.name, for_pod.uid)
            options["node"] = self.registry.node
        claims = self.keyset.claims(
            namespace=namespace,
            service_account=account.name,
            service_account_uid=account.uid,
            **options,
        )
        token = self.keyset.sign(claims, key=key)
        self.counters["tokens_issued"] += 1
        # token.go: the status reports the requested expiration, not an `exp` extended to a
        # year (whose requested time is then `warnafter`).
        requested = claims["kubernetes.io"].get("warnafter", claims["exp"])
        return token, float(requested)

    def token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """POST .../serviceaccounts/{name}/token (pkg/registry/core/serviceaccount/storage)."""
        spec = _checked_spec(body, namespace, name)
        account = self.registry.service_account(namespace, name)
        audiences = spec.get("audiences") or list(self.api_audiences)
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise bad_request("spec.audiences must be a list of strings")
        expiration = _expiration_seconds(spec)
        ref = spec.get("boundObjectRef")
        pod, node = self._bound_object(namespace, name, ref)
        now = self.clock()
        token, expires_at = self.issue(
            namespace,
            account.name,
            audiences=audiences,
            expiration_seconds=expiration,
            for_pod=pod,
            node=node,
            issued_at=now,
        )
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": timestamp(now)},
            "spec": {
                "audiences": audiences,
                "expirationSeconds": expiration,
                "boundObjectRef": ref,
            },
            "status": {"token": token, "expirationTimestamp": timestamp(expires_at)},
        }

    def _bound_object(
        self, namespace: str, name: str, ref: Any
    ) -> tuple[Pod | None, ObjectRef | None]:
        if ref is None:
            return None, None
        if not isinstance(ref, dict):
            raise bad_request("spec.boundObjectRef must be an object")
        kind, api_version = str(ref.get("kind") or ""), str(ref.get("apiVersion") or "v1")
        ref_name, ref_uid = str(ref.get("name") or ""), str(ref.get("uid") or "")
        group, _, version = api_version.rpartition("/")
        pod: Pod | None = None
        node: ObjectRef | None = None
        if group == "" and kind == "Pod":
            pod = self.registry.find_pod(namespace, ref_name)
            if pod.service_account != name:
                raise bad_request(
                    f'cannot bind token for serviceaccount "{name}" to pod running with '
                    "different serviceaccount name."
                )
            uid = pod.uid
        elif group == "" and kind == "Node":
            if ref_name != self.registry.node.name:
                raise not_found("nodes", ref_name)
            node, uid = self.registry.node, self.registry.node.uid
        elif group == "" and kind == "Secret":
            raise not_found("secrets", ref_name)
        else:
            raise bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        if ref_uid and ref_uid != uid:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind} "{ref_name}": the UID in the bound '
                f"object reference ({ref_uid}) does not match the UID in record. The object "
                "might have been deleted and then recreated",
                {"name": ref_name, "kind": kind},
            )
        return pod, node


def _checked_spec(body: Any, namespace: str, name: str) -> dict[str, Any]:
    """The request's spec, once the body is a TokenRequest whose metadata names this account."""
    if not isinstance(body, dict):
        raise bad_request(_WRONG_KIND)
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise bad_request(_WRONG_KIND)
    for member, expected in (("name", name), ("namespace", namespace)):
        if metadata.get(member) not in (None, "", expected):
            raise _invalid(
                name,
                f"metadata.{member}",
                metadata[member],
                f"must match the service account {member} if specified",
            )
    return spec


def _expiration_seconds(spec: dict[str, Any]) -> int:
    expiration = spec.get("expirationSeconds", 3600)
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise bad_request("spec.expirationSeconds must be an integer")
    for out_of_bounds, message in (
        (expiration < MIN_TOKEN_SECONDS, "may not specify a duration less than 10 minutes"),
        (expiration > MAX_TOKEN_SECONDS, "may not specify a duration larger than 2^32 seconds"),
    ):
        if out_of_bounds:
            raise _invalid("", "spec.expirationSeconds", expiration, message)
    return expiration


def _invalid(name: str, path: str, value: Any, message: str) -> ApiError:
    shown = json.dumps(value) if isinstance(value, str) else value
    return ApiError(
        422,
        "Invalid",
        f'TokenRequest.authentication.k8s.io "{name}" is invalid: {path}: Invalid value: '
        f"{shown}: {message}",
        {
            "name": name,
            "group": "authentication.k8s.io",
            "kind": "TokenRequest",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {shown}: {message}",
                    "field": path,
                }
            ],
        },
    )
