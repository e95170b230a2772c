"""Bodies checked against the Kubernetes JSON schemas that kubernetes-validate ships."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

VERSION = kubernetes_validate.latest_version()
_DIRECTORY = f"kubernetes-json-schema/v{VERSION}-local-strict"


def schema_errors(body: Any, schema: str) -> list[str]:
    """What `schema` (a file name such as `apiresourcelist-meta-v1`) finds wrong with `body`,
    in the strict variant (no member the type does not have)."""
    document = schema_contents(f"{_DIRECTORY}/{schema}.json", VERSION)
    definitions = schema_contents(f"{_DIRECTORY}/_definitions.json", VERSION)
    registry: Registry[Any] = Resource.from_contents(document) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    validator = jsonschema.Draft202012Validator(document, registry=registry)
    return [
        f"{'.'.join(map(str, error.path))}: {error.message}"
        for error in validator.iter_errors(body)
    ]
