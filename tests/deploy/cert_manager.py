"""Strict schemas for the cert-manager.io/v1 kinds the cert-manager component uses.

kubernetes-validate knows only Kubernetes' own kinds. These schemas hold the fields of
cert-manager's v1 API (cert-manager.io/docs/reference/api-docs) that a Certificate or Issuer of
this project may use, with `additionalProperties: false` at every level, so a misspelt or
misplaced field fails here as it does for the built-in kinds. A field outside this subset is a
problem too: extend the schema when the component needs it.
"""

from __future__ import annotations

from typing import Any

import jsonschema

__all__ = ["API_VERSION", "cert_manager_problems_of"]

API_VERSION = "cert-manager.io/v1"

_STRING: dict[str, Any] = {"type": "string", "minLength": 1}
_STRINGS: dict[str, Any] = {"type": "array", "items": _STRING, "minItems": 1}
# Go's time.ParseDuration units, as cert-manager reads duration and renewBefore.
_DURATION: dict[str, Any] = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$"}
_LABELS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_METADATA = _closed(
    {"name": _STRING, "namespace": _STRING, "labels": _LABELS, "annotations": _LABELS},
    ("name",),
)
_ISSUER_REF = _closed(
    {
        "name": _STRING,
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
    ("name",),
)
_PRIVATE_KEY = _closed(
    {
        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
        "size": {"type": "integer", "minimum": 1},
        "encoding": {"enum": ["PKCS1", "PKCS8"]},
        "rotationPolicy": {"enum": ["Never", "Always"]},
    }
)
_USAGES = {
    "type": "array",
    "items": {
        "enum": [
            "signing",
            "digital signature",
            "content commitment",
            "key encipherment",
            "key agreement",
            "data encipherment",
            "cert sign",
            "crl sign",
            "encipher only",
            "decipher only",
            "any",
            "server auth",
            "client auth",
            "code signing",
            "email protection",
        ]
    },
}
_CERTIFICATE_SPEC = _closed(
    {
        "secretName": _STRING,
        "issuerRef": _ISSUER_REF,
        "commonName": _STRING,
        "dnsNames": _STRINGS,
        "ipAddresses": _STRINGS,
        "isCA": {"type": "boolean"},
        "duration": _DURATION,
        "renewBefore": _DURATION,
        "privateKey": _PRIVATE_KEY,
        "usages": _USAGES,
    },
    ("secretName", "issuerRef"),
)
_ISSUER_SPEC = {
    **_closed(
        {
            "selfSigned": _closed({}),
            "ca": _closed({"secretName": _STRING}, ("secretName",)),
        }
    ),
    # An issuer is exactly one kind of issuer.
    "minProperties": 1,
    "maxProperties": 1,
}


def _document(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


SCHEMAS = {
    "Certificate": _document("Certificate", _CERTIFICATE_SPEC),
    "Issuer": _document("Issuer", _ISSUER_SPEC),
}


def cert_manager_problems_of(doc: dict[str, Any], where: str) -> list[str]:
    """Every way `doc` departs from its kind's schema (an unknown kind is one)."""
    schema = SCHEMAS.get(str(doc.get("kind")))
    if schema is None:
        return [f"{where}: no schema for {API_VERSION} kind {doc.get('kind')!r}"]
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        path = ".".join(str(part) for part in error.path) or "(top level)"
        problems.append(f"{where}: {path}: {error.message}")
    return problems
