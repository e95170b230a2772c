"""The API server over HTTP: pinned CA, no redirects, bounded reads, token guard."""

from __future__ import annotations

import asyncio
import ssl
from os import PathLike

import httpx
import msgspec

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_RESPONSE_BYTES",
    "TOTAL_TIMEOUT_SECONDS",
    "ApiResponse",
    "ApiServerError",
    "CaFileError",
    "api_server_client",
    "origin_of",
    "pinned_context",
    "request",
    "same_origin",
    "tls_reason",
]

CONNECT_TIMEOUT_SECONDS = 2.0
TOTAL_TIMEOUT_SECONDS = 5.0
# A JWKS with a handful of keys is a few KiB; 1 MiB bounds what a broken or hostile server
# can make us buffer.
MAX_RESPONSE_BYTES = 1024 * 1024

_DEFAULT_PORTS = {"https": 443, "http": 80}


class CaFileError(ValueError):
    """The CA bundle that should pin the API server's certificate cannot be used."""


class ApiServerError(Exception):
    """A request to the API server failed: `reason` says why, never with a token in it."""

    __slots__ = ("reason", "tls")

    def __init__(self, reason: str, *, tls: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tls = tls


class ApiResponse(msgspec.Struct, frozen=True):
    """A complete, size-bounded answer."""

    status: int
    headers: httpx.Headers
    body: bytes


def api_server_client(ca_file: str | PathLike[str]) -> httpx.AsyncClient:
    """A client that trusts only `ca_file` (the pod's `ca.crt`), follows no redirect, ignores
    proxy and CA environment variables, and times out (connect 2 s; `request` bounds the total).

    Raises:
        CaFileError: naming the file and the OS or TLS reason when it cannot be loaded.
    """
    return httpx.AsyncClient(
        verify=pinned_context(ca_file),
        follow_redirects=False,
        # HTTPS_PROXY / SSL_CERT_FILE must not reroute our token or widen the trust.
        trust_env=False,
        timeout=httpx.Timeout(TOTAL_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
    )


def pinned_context(ca_file: str | PathLike[str]) -> ssl.SSLContext:
    """A client TLS context that trusts `ca_file` only, checks the host name, TLS 1.2 at least.

    Raises:
        CaFileError: naming the file and the OS or TLS reason when it cannot be loaded.
    """
    try:
        # With cafile given, create_default_context loads that bundle only, not the system store:
        # the CA is private, and a public CA must not be able to vouch for the server.
        context = ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError as exc:  # an OSError subclass: caught first
        raise CaFileError(
            f"CA file {str(ca_file)!r} holds no usable PEM certificate: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise CaFileError(f"CA file {str(ca_file)!r} cannot be read: {exc.strerror}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def origin_of(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, with the scheme's default port made explicit."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme.lower()
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS.get(scheme, -1)
    return scheme, parsed.host.lower(), port


def same_origin(url: str | httpx.URL, other: str | httpx.URL) -> bool:
    """True when both URLs have the same scheme, host and port."""
    return origin_of(url) == origin_of(other)


def tls_reason(exc: BaseException) -> str | None:
    """The TLS failure (e.g. `certificate verify failed: unable to get local issuer
    certificate`) somewhere in an exception's cause chain, if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return str(current.reason or current)
        current = current.__cause__ or current.__context__
    return None


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    api_server: str,
    token: str | None = None,
    json_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
    total_seconds: float = TOTAL_TIMEOUT_SECONDS,
) -> ApiResponse:
    """Send one request and read the whole answer, bounded in size and time.

    `token` is attached as `Authorization: Bearer` only when `url` has the API server's origin
    over HTTPS; to any other origin the request goes out without it. A redirect is never
    followed and is an error: kube-apiserver does not redirect these endpoints.

    Raises:
        ApiServerError: on a TLS, connection, timeout, size or redirect failure.
    """
    sent = {"Accept": "application/json"}
    if headers:
        sent.update(headers)
    if json_body is not None:
        sent["Content-Type"] = "application/json"
    if token and _may_carry_token(url, api_server):
        sent["Authorization"] = f"Bearer {token}"
    where = _describe(url)
    try:
        async with asyncio.timeout(total_seconds):
            # follow_redirects=False here too: a client built elsewhere must not carry our
            # token to wherever a Location header points.
            async with client.stream(
                method, url, headers=sent, content=json_body, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    target = response.headers.get("location", "")
                    raise ApiServerError(
                        f"{where} answered {response.status_code} redirecting to "
                        f"{_describe(target) if target else 'nowhere'}; redirects are not followed"
                    )
                body = await _read_bounded(response, max_bytes, where)
                return ApiResponse(response.status_code, response.headers, body)
    except ApiServerError:
        raise
    except TimeoutError:
        raise ApiServerError(f"{where} did not answer within {total_seconds:g} s") from None
    except httpx.TimeoutException:
        raise ApiServerError(f"{where} timed out") from None
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        reason = tls_reason(exc)
        if reason is not None:
            raise ApiServerError(f"TLS with {where} failed: {reason}", tls=True) from None
        raise ApiServerError(f"{where} could not be reached: {_exception_text(exc)}") from None


def _may_carry_token(url: str, api_server: str) -> bool:
    try:
        target = origin_of(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return target[0] == "https" and target == origin_of(api_server)


async def _read_bounded(response: httpx.Response, max_bytes: int, where: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiServerError(f"{where} sent {declared} bytes, more than the {max_bytes} allowed")
    body = bytearray()
    # aiter_bytes yields decoded bytes, so the cap also bounds a compressed "bomb".
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ApiServerError(f"{where} sent more than the {max_bytes} bytes allowed")
    return bytes(body)


def _describe(url: str) -> str:
    # Scheme, host, port and path only: a query string could carry anything.
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "an invalid URL"
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


def _exception_text(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
