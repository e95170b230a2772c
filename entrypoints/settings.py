"""The SPEC §3 settings, read once from the environment into a frozen struct."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from domain.policy import SubjectPolicy
from domain.rules import DEFAULT_LEEWAY_SECONDS

__all__ = [
    "DEFAULTS",
    "Settings",
    "SettingsError",
    "check_service_files",
    "load_settings",
]

# The kubelet mounts these in every pod that automounts its service account token.
_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_CLUSTER_HOST = "https://kubernetes.default.svc"
_ISSUER = "https://kubernetes.default.svc.cluster.local"

DEFAULTS: dict[str, str] = {
    "KSA_TOKEN_FILE": f"{_SA_DIR}/token",
    "KSA_CA_FILE": f"{_SA_DIR}/ca.crt",
    "KSA_API_SERVER": _CLUSTER_HOST,
    "KSA_ISSUER": _ISSUER,
    "KSA_DISCOVERY_URL": f"{_CLUSTER_HOST}/.well-known/openid-configuration",
    "KSA_JWKS_URL": "",
    "KSA_AUDIENCES": _ISSUER,
    "KSA_VERIFIER": "jwks",
    "KSA_JWKS_FILE": "",
    "KSA_LEEWAY_SECONDS": str(int(DEFAULT_LEEWAY_SECONDS)),
    "KSA_ALLOWED_SUBJECTS": "",
    "KSA_BE2_URL": "http://be2",
    "KSA_EXPOSE_TOKEN": "true",
    "KSA_LOG_LEVEL": "INFO",
    "KSA_LOG_FORMAT": "json",
}

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing, malformed or unusable; the message is one line naming it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every SPEC §3 setting, parsed and validated."""

    token_file: str = DEFAULTS["KSA_TOKEN_FILE"]
    ca_file: str = DEFAULTS["KSA_CA_FILE"]
    api_server: str = DEFAULTS["KSA_API_SERVER"]
    issuers: tuple[str, ...] = (_ISSUER,)
    discovery_url: str = DEFAULTS["KSA_DISCOVERY_URL"]
    jwks_url: str | None = None
    audiences: tuple[str, ...] = (_ISSUER,)
    verifier: Literal["jwks", "tokenreview"] = "jwks"
    jwks_file: str | None = None
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    policy: SubjectPolicy = SubjectPolicy()
    be2_url: str = DEFAULTS["KSA_BE2_URL"]
    expose_token: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every KSA_* variable; unset or empty means the SPEC default.

    Raises:
        SettingsError: one line naming the first bad variable.
    """

    def raw(name: str) -> str:
        value = environ.get(name, "").strip()
        return value or DEFAULTS[name]

    jwks_file = raw("KSA_JWKS_FILE") or None
    verifier = _parse("KSA_VERIFIER", raw("KSA_VERIFIER"), _verifier)
    if jwks_file is not None and verifier == "tokenreview":
        raise SettingsError(
            "KSA_JWKS_FILE: a JWKS file verifies locally; it cannot be combined with "
            "KSA_VERIFIER=tokenreview (unset one of them)"
        )
    policy = _parse("KSA_ALLOWED_SUBJECTS", raw("KSA_ALLOWED_SUBJECTS"), _policy)
    jwks_url = raw("KSA_JWKS_URL")
    return Settings(
        token_file=_parse("KSA_TOKEN_FILE", raw("KSA_TOKEN_FILE"), _path),
        ca_file=_parse("KSA_CA_FILE", raw("KSA_CA_FILE"), _path),
        api_server=_parse("KSA_API_SERVER", raw("KSA_API_SERVER"), _https_origin),
        issuers=_parse("KSA_ISSUER", raw("KSA_ISSUER"), _list),
        discovery_url=_parse("KSA_DISCOVERY_URL", raw("KSA_DISCOVERY_URL"), _https_url),
        jwks_url=_parse("KSA_JWKS_URL", jwks_url, _https_url) if jwks_url else None,
        audiences=_parse("KSA_AUDIENCES", raw("KSA_AUDIENCES"), _list),
        verifier=verifier,
        jwks_file=_parse("KSA_JWKS_FILE", jwks_file, _path) if jwks_file else None,
        leeway_seconds=_parse("KSA_LEEWAY_SECONDS", raw("KSA_LEEWAY_SECONDS"), _leeway),
        policy=policy,
        be2_url=_parse("KSA_BE2_URL", raw("KSA_BE2_URL"), _http_url),
        expose_token=_parse("KSA_EXPOSE_TOKEN", raw("KSA_EXPOSE_TOKEN"), _boolean),
        log_level=_parse("KSA_LOG_LEVEL", raw("KSA_LOG_LEVEL"), _log_level),
        log_format=_parse("KSA_LOG_FORMAT", raw("KSA_LOG_FORMAT"), _log_format),
    )


def check_service_files(settings: Settings, service: Literal["be", "be2"]) -> None:
    """Fail fast when a file the service cannot work without is absent or unreadable.

    be2 needs the cluster CA (to trust the API server) and its own token (discovery, JWKS and
    TokenReview all need authentication under the default RBAC), unless KSA_JWKS_FILE makes it
    verify offline. be starts without its token: `/get-jwt` and `/readyz` answer 503 until the
    kubelet has written it.

    Raises:
        SettingsError: one line naming the variable and the file.
    """
    if service != "be2":
        return
    if settings.jwks_file is not None:
        _require_readable("KSA_JWKS_FILE", settings.jwks_file, "the JWKS file")
        return
    _require_readable("KSA_CA_FILE", settings.ca_file, "the cluster CA certificate")
    _require_readable("KSA_TOKEN_FILE", settings.token_file, "be2's service account token")


def _require_readable(name: str, path: str, what: str) -> None:
    hint = (
        " (not running in a pod? set KSA_JWKS_FILE to verify offline, or run `ksa-auth up`)"
        if path.startswith(_SA_DIR)
        else ""
    )
    if not os.path.exists(path):
        raise SettingsError(f"{name}: {what} {path} does not exist{hint}")
    if os.path.isdir(path):
        raise SettingsError(f"{name}: {what} {path} is a directory, not a file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise SettingsError(f"{name}: {what} {path} is not readable ({exc.strerror})") from None


def _parse(name: str, value: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(value)
    except ValueError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "invalid value"
        raise SettingsError(f"{name}: {message}") from None


def _shown(value: str) -> str:
    # Settings are not secrets, but a pasted token must not be echoed back in full.
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _path(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path must not contain NUL")
    return value


def _list(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
    if not items:
        raise ValueError("needs at least one comma-separated value")
    return items


def _policy(value: str) -> SubjectPolicy:
    return SubjectPolicy.parse(value.split(","))


def _verifier(value: str) -> Literal["jwks", "tokenreview"]:
    lowered = value.lower()
    if lowered == "jwks":
        return "jwks"
    if lowered == "tokenreview":
        return "tokenreview"
    raise ValueError(f"{_shown(value)} is not one of: jwks, tokenreview")


def _leeway(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a number of seconds") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{_shown(value)} must be a finite, non-negative number of seconds")
    # kube-apiserver uses 60 s; more than an hour would accept hour-old expired tokens.
    if number > 3600:
        raise ValueError(f"{_shown(value)} is more than 3600 seconds")
    return number


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{_shown(value)} is not a boolean (true/false, 1/0, yes/no)")


def _log_level(value: str) -> Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]:
    upper = value.upper()
    for level in _LOG_LEVELS:
        if upper == level:
            return level  # type: ignore[return-value]
    raise ValueError(f"{_shown(value)} is not one of: {', '.join(_LOG_LEVELS)}")


def _log_format(value: str) -> Literal["json", "text"]:
    lowered = value.lower()
    if lowered == "json":
        return "json"
    if lowered == "text":
        return "text"
    raise ValueError(f"{_shown(value)} is not one of: json, text")


def _url(value: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{_shown(value)} is not a URL ({exc})") from None
    if parts.scheme.lower() not in schemes:
        allowed = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"{_shown(value)} must start with {allowed}")
    if not parts.hostname:
        raise ValueError(f"{_shown(value)} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{_shown(value)} must not carry credentials")
    if port == 0:
        raise ValueError(f"{_shown(value)} has port 0")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError(f"{_shown(value)} contains whitespace or control characters")
    return value


def _https_url(value: str) -> str:
    # Our service account token goes to these URLs: never over plain HTTP.
    url = _url(value, ("https",))
    if urlsplit(url).fragment:
        raise ValueError(f"{_shown(value)} must not have a #fragment")
    return url


def _https_origin(value: str) -> str:
    url = _https_url(value).rstrip("/")
    parts = urlsplit(url)
    if parts.query:
        raise ValueError(f"{_shown(value)} must not have a query string")
    return url


def _http_url(value: str) -> str:
    return _url(value, ("http", "https")).rstrip("/")
