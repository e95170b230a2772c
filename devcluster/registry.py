"""What the emulated API server stores: service accounts, and the pods on its one node."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from devcluster.kubelet import NODE_NAME, Pod
from devcluster.status import not_found
from domain.claims import ObjectRef

__all__ = ["Registry", "ServiceAccount"]


@dataclass
class ServiceAccount:
    namespace: str
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


class Registry:
    """The objects by (namespace, name); a lookup of a missing one is the API's 404."""

    def __init__(self) -> None:
        self.node = ObjectRef(NODE_NAME, str(uuid.uuid4()))
        self.service_accounts: dict[tuple[str, str], ServiceAccount] = {}
        self.pods: dict[tuple[str, str], Pod] = {}

    def service_account(self, namespace: str, name: str, *, create: bool = False) -> ServiceAccount:
        found = self.service_accounts.get((namespace, name))
        if found is None:
            if not create:
                raise not_found("serviceaccounts", name)
            found = self.service_accounts[(namespace, name)] = ServiceAccount(namespace, name)
        return found

    def find_pod(self, namespace: str, name: str) -> Pod:
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise not_found("pods", name)
        return pod
