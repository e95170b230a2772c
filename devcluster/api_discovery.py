"""/version and API discovery (/api, /apis, a group version's resources), for kubectl."""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from devcluster.access import authorize_request
from devcluster.cluster import Cluster
from devcluster.rbac import non_resource
from devcluster.status import AnyRequest, ApiError, json_response

__all__ = [
    "API_GROUPS",
    "CORE",
    "SERVER_VERSION",
    "GroupVersion",
    "Resource",
    "accepts_json",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "discovery_routes",
    "version_info",
]

# The kube-apiserver minor whose behaviour the emulator follows (kubectl checks version skew).
SERVER_VERSION = ("1", "32", "v1.32.0-devcluster")


@dataclass(frozen=True)
class Resource:
    """One APIResource: what kubectl's RESTMapper and `api-resources` read."""

    name: str
    singular_name: str
    namespaced: bool
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "singularName": self.singular_name,
            "namespaced": self.namespaced,
        }
        if self.group or self.version:
            # A subresource whose kind lives in another group (TokenRequest under core/v1).
            body["group"], body["version"] = self.group, self.version
        body["kind"] = self.kind
        body["verbs"] = list(self.verbs)
        return body


@dataclass(frozen=True)
class GroupVersion:
    """A group version and the resources the emulator serves in it (and nothing else)."""

    group: str
    version: str
    resources: tuple[Resource, ...]

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# Only what the emulator implements: TokenRequest (a subresource of serviceaccounts, which
# themselves cannot be read here) and TokenReview.
CORE = GroupVersion(
    "",
    "v1",
    (
        Resource(
            "serviceaccounts/token",
            "",
            namespaced=True,
            kind="TokenRequest",
            verbs=("create",),
            group="authentication.k8s.io",
            version="v1",
        ),
    ),
)
API_GROUPS: tuple[GroupVersion, ...] = (
    GroupVersion(
        "authentication.k8s.io",
        "v1",
        (
            Resource(
                "tokenreviews",
                "tokenreview",
                namespaced=False,
                kind="TokenReview",
                verbs=("create",),
            ),
        ),
    ),
)


def version_info() -> dict[str, Any]:
    """k8s.io/apimachinery/pkg/version.Info, as GET /version answers it."""
    major, minor, git_version = SERVER_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": sys.implementation.name,
        "platform": f"{sys.platform}/{platform.machine().lower()}",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """GET /api: metav1.APIVersions."""
    return {
        "kind": "APIVersions",
        "versions": [CORE.version],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group(versions: Sequence[GroupVersion]) -> dict[str, Any]:
    """One metav1.APIGroup: its versions, the first preferred."""
    listed = [{"groupVersion": v.group_version, "version": v.version} for v in versions]
    return {"name": versions[0].group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(groups: Sequence[GroupVersion] = API_GROUPS) -> dict[str, Any]:
    """GET /apis: metav1.APIGroupList, one entry per group in the order first seen."""
    by_group: dict[str, list[GroupVersion]] = {}
    for group_version in groups:
        by_group.setdefault(group_version.group, []).append(group_version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(versions) for versions in by_group.values()],
    }


def api_resource_list(group_version: GroupVersion) -> dict[str, Any]:
    """GET /api/v1 or /apis/{group}/{version}: metav1.APIResourceList."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version.group_version,
        "resources": [resource.as_json() for resource in group_version.resources],
    }


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header takes the unaggregated JSON documents.

    kubectl asks for aggregated discovery first (`application/json;g=apidiscovery.k8s.io;
    v=v2;as=APIGroupDiscoveryList`) and plain `application/json` after it; an answer of plain
    JSON is the documented fallback (KEP-3352): client-go then reads /api, /apis and each group
    version. A client that will take only the aggregated form gets 406, as from a server
    without it.
    """
    if not accept:
        return True
    for clause in accept.split(","):
        media_type, *parameters = (part.strip() for part in clause.split(";"))
        names = {p.split("=", 1)[0].strip().lower() for p in parameters if p}
        if media_type.lower() in ("application/json", "application/*", "*/*") and not (
            names & {"g", "v", "as"}
        ):
            return True
    return False


def _no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _not_acceptable() -> ApiError:
    return ApiError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    )


def discovery_routes(cluster: Cluster) -> list[HTTPRouteHandler]:
    """GET /version (anyone), and the discovery documents (any authenticated user)."""
    groups = {(gv.group, gv.version): gv for gv in API_GROUPS}

    def reader(request: AnyRequest) -> None:
        # Bootstrap RBAC: system:discovery lets authenticated users read these, and
        # system:public-info-viewer lets anyone read /version.
        attributes = non_resource("get", request.url.path)
        authorize_request(cluster, request.headers.get("authorization"), attributes)
        if not accepts_json(request.headers.get("accept")):
            raise _not_acceptable()

    @get("/version")
    async def version(request: AnyRequest) -> Response[bytes]:
        reader(request)
        return json_response(version_info())

    @get("/api")
    async def core_versions(request: AnyRequest) -> Response[bytes]:
        reader(request)
        return json_response(api_versions(request.url.netloc))

    @get("/api/v1")
    async def core_resources(request: AnyRequest) -> Response[bytes]:
        reader(request)
        return json_response(api_resource_list(CORE))

    @get("/apis")
    async def group_list(request: AnyRequest) -> Response[bytes]:
        reader(request)
        return json_response(api_group_list())

    @get("/apis/{group:str}")
    async def group(request: AnyRequest, group: FromPath[str]) -> Response[bytes]:
        reader(request)
        versions = [gv for gv in API_GROUPS if gv.group == group]
        if not versions:
            raise _no_such_path()
        return json_response({"kind": "APIGroup", "apiVersion": "v1", **api_group(versions)})

    @get("/apis/{group:str}/{version:str}")
    async def group_resources(
        request: AnyRequest, group: FromPath[str], version: FromPath[str]
    ) -> Response[bytes]:
        reader(request)
        found = groups.get((group, version))
        if found is None:
            raise _no_such_path()
        return json_response(api_resource_list(found))

    return [version, core_versions, core_resources, group_list, group, group_resources]
