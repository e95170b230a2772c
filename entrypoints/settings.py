"""The KSA_* settings, read once from the environment into a frozen struct."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

import msgspec

from adapters.projected_token_file import DEFAULT_TOKEN_FILE, SERVICE_ACCOUNT_DIRECTORY
from adapters.serving_certificate import ServingCertificate, ServingCertificateError
from adapters.static_jwks_file import MAX_JWKS_FILE_BYTES
from domain.jwks import parse_jwks
from domain.policy import SubjectPolicy
from domain.rules import DEFAULT_LEEWAY_SECONDS

__all__ = [
    "VARIABLES",
    "Settings",
    "SettingsError",
    "check_service_files",
    "check_tls_files",
    "load_settings",
]

_CLUSTER_HOST = "https://kubernetes.default.svc"
_ISSUER = "https://kubernetes.default.svc.cluster.local"

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

_Number = TypeVar("_Number", int, float)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(ValueError):
    """A setting is missing, malformed or unusable; the message is one line naming it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting, parsed and validated; the defaults here are the only ones."""

    token_file: str = DEFAULT_TOKEN_FILE
    ca_file: str = f"{SERVICE_ACCOUNT_DIRECTORY}/ca.crt"
    api_server: str = _CLUSTER_HOST
    issuers: tuple[str, ...] = (_ISSUER,)
    discovery_url: str = f"{_CLUSTER_HOST}/.well-known/openid-configuration"
    jwks_url: str | None = None
    audiences: tuple[str, ...] = (_ISSUER,)
    verifier: Literal["jwks", "tokenreview"] = "jwks"
    jwks_file: str | None = None
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    jwks_refresh_seconds: float = 300.0
    policy: SubjectPolicy = SubjectPolicy()
    be2_url: str = "http://be2"
    be2_ca_file: str | None = None
    expose_token: bool = True
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    workers: int = 1


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every KSA_* variable; unset or empty keeps the default.

    Raises:
        SettingsError: one line naming the first bad variable.
    """
    values: dict[str, Any] = {}
    for name, (field, parse) in _VARIABLES.items():
        text = environ.get(name, "").strip()
        if text:
            values[field] = _parse(name, text, parse)
    settings = Settings(**values)
    if settings.jwks_file is not None and settings.verifier == "tokenreview":
        raise SettingsError(
            "KSA_JWKS_FILE: a JWKS file verifies locally; it cannot be combined with "
            "KSA_VERIFIER=tokenreview (unset one of them)"
        )
    _check_tls_pairs(settings)
    return settings


def _check_tls_pairs(settings: Settings) -> None:
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        given, missing = (
            ("KSA_TLS_CERT_FILE", "KSA_TLS_KEY_FILE")
            if settings.tls_key_file is None
            else ("KSA_TLS_KEY_FILE", "KSA_TLS_CERT_FILE")
        )
        raise SettingsError(
            f"{missing}: not set, but {given} is; set both to serve TLS, or neither"
        )
    https = urlsplit(settings.be2_url).scheme.lower() == "https"
    if https and settings.be2_ca_file is None:
        raise SettingsError(
            "KSA_BE2_CA_FILE: not set, but KSA_BE2_URL is https; name the CA that signs be2's "
            "certificate (there is no way to skip verification)"
        )
    if not https and settings.be2_ca_file is not None:
        raise SettingsError(
            f"KSA_BE2_CA_FILE: set, but KSA_BE2_URL {settings.be2_url} is plain http; "
            "use https:// or unset the CA"
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
        if settings.be2_ca_file is not None:
            _require_readable("KSA_BE2_CA_FILE", settings.be2_ca_file, "be2's CA certificate")
        return
    if settings.jwks_file is not None:
        _require_readable("KSA_JWKS_FILE", settings.jwks_file, "the JWKS file")
        _require_jwks(settings.jwks_file)
        return
    _require_readable("KSA_CA_FILE", settings.ca_file, "the cluster CA certificate")
    _require_readable("KSA_TOKEN_FILE", settings.token_file, "be2's service account token")


def check_tls_files(settings: Settings) -> ServingCertificate | None:
    """The certificate and key to serve TLS with, loaded once to prove they work; None for HTTP.

    Raises:
        SettingsError: one line naming the variable and the file.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    _require_readable("KSA_TLS_CERT_FILE", settings.tls_cert_file, "the TLS certificate")
    _require_readable("KSA_TLS_KEY_FILE", settings.tls_key_file, "the TLS private key")
    served = ServingCertificate(settings.tls_cert_file, settings.tls_key_file)
    try:
        served.context()
    except ServingCertificateError as exc:
        raise SettingsError(f"KSA_TLS_CERT_FILE, KSA_TLS_KEY_FILE: {exc}") from None
    return served


def _require_readable(name: str, path: str, what: str) -> None:
    hint = (
        " (not running in a pod? set KSA_JWKS_FILE to verify offline, or run `ksa-auth up`)"
        if path.startswith(SERVICE_ACCOUNT_DIRECTORY)
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


def _require_jwks(path: str) -> None:
    # A file with no usable key is a setting error at start-up, not a 401 on every request.
    with open(path, "rb") as handle:
        document = handle.read(MAX_JWKS_FILE_BYTES + 1)
    try:
        parse_jwks(document)
    except ValueError as exc:
        raise SettingsError(f"KSA_JWKS_FILE: {path}: {exc}") from None


def _parse(name: str, value: str, parse: Callable[[str], Any]) -> Any:
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


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        for option in options:
            if value.lower() == option.lower():
                return option
        raise ValueError(f"{_shown(value)} is not one of: {', '.join(options)}")

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    return _bounded(float, "a number of seconds", low, high, " seconds")


def _count(low: int, high: int) -> Callable[[str], int]:
    return _bounded(int, "a whole number", low, high, "")


def _bounded(
    read: Callable[[str], _Number], noun: str, low: _Number, high: _Number, unit: str
) -> Callable[[str], _Number]:
    def parse(value: str) -> _Number:
        try:
            number = read(value)
        except ValueError:
            raise ValueError(f"{_shown(value)} is not {noun}") from None
        if not (math.isfinite(number) and low <= number <= high):
            raise ValueError(f"{_shown(value)} must be between {low:g} and {high:g}{unit}")
        return number

    return parse


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{_shown(value)} is not a boolean (true/false, 1/0, yes/no)")


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


# Each variable, the Settings field it sets, and how its text is read.
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KSA_TOKEN_FILE": ("token_file", _path),
    "KSA_CA_FILE": ("ca_file", _path),
    "KSA_API_SERVER": ("api_server", _https_origin),
    "KSA_ISSUER": ("issuers", _list),
    "KSA_DISCOVERY_URL": ("discovery_url", _https_url),
    "KSA_JWKS_URL": ("jwks_url", _https_url),
    "KSA_AUDIENCES": ("audiences", _list),
    "KSA_VERIFIER": ("verifier", _choice("jwks", "tokenreview")),
    "KSA_JWKS_FILE": ("jwks_file", _path),
    # kube-apiserver's leeway is 60 s; more than an hour would accept hour-old expired tokens.
    "KSA_LEEWAY_SECONDS": ("leeway_seconds", _seconds(0, 3600)),
    # At least the shortest max-age honoured (60 s), at most the longest (a day).
    "KSA_JWKS_REFRESH_SECONDS": ("jwks_refresh_seconds", _seconds(60, 86400)),
    "KSA_ALLOWED_SUBJECTS": ("policy", _policy),
    "KSA_BE2_URL": ("be2_url", _http_url),
    "KSA_BE2_CA_FILE": ("be2_ca_file", _path),
    "KSA_EXPOSE_TOKEN": ("expose_token", _boolean),
    "KSA_LOG_LEVEL": ("log_level", _choice(*get_args(LogLevel))),
    "KSA_LOG_FORMAT": ("log_format", _choice("json", "text")),
    "KSA_TLS_CERT_FILE": ("tls_cert_file", _path),
    "KSA_TLS_KEY_FILE": ("tls_key_file", _path),
    # Server worker processes; each verifies and keeps its own keys and cache.
    "KSA_WORKERS": ("workers", _count(1, 64)),
}
VARIABLES = tuple(_VARIABLES)
"""The name of every setting, in the order of the README's table."""
