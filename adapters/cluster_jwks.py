"""The cluster's signing keys: OIDC discovery + JWKS from the API server over the pod's CA."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import msgspec

from adapters.kube_http import (
    TOTAL_TIMEOUT_SECONDS,
    ApiResponse,
    ApiServerError,
    origin_of,
    request,
)
from domain.errors import KeysUnavailable, TokenUnavailable, UnknownKey
from domain.jwks import parse_jwks
from domain.ports import (
    NO_STATISTICS,
    Clock,
    KeyProvider,
    Lifecycle,
    PublicJwk,
    Statistics,
    TokenSource,
)

__all__ = ["UNKNOWN_KID_INTERVAL_SECONDS", "ClusterJwksConfig", "ClusterJwksKeyProvider"]

logger = logging.getLogger(__name__)

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_MAX_NAP_SECONDS = 1.0
# The unknown-kid rule: a kid we do not hold fetches the keys at once, unless an unknown kid
# started a fetch less than this long ago; then it is 401 unknown_key and nothing is fetched.
# Per worker, made-up kids cost at most one fetch per interval (720 an hour), and a key the
# cluster rotates in is accepted at most one interval plus one fetch after it is published, even
# right after made-up kids: any fetch from then on brings it. No jitter: this latency is a bound.
UNKNOWN_KID_INTERVAL_SECONDS = 5.0
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class ClusterJwksConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where the keys are and how long to trust them."""

    discovery_url: str
    """KSA_DISCOVERY_URL: `https://kubernetes.default.svc/.well-known/openid-configuration`."""
    issuers: frozenset[str]
    """KSA_ISSUER: discovery's `issuer` must be one of these."""
    jwks_url: str | None = None
    """KSA_JWKS_URL; unset: discovery's `jwks_uri`, rebased onto the discovery URL's origin."""
    api_server: str | None = None
    """KSA_API_SERVER: the only origin our token is sent to (unset: the discovery URL's)."""
    cooldown_seconds: float = UNKNOWN_KID_INTERVAL_SECONDS
    """At most one unknown-kid refresh per this many seconds (and one retry of a failed fetch
    on demand)."""
    default_max_age_seconds: float = 3600.0
    min_max_age_seconds: float = 60.0
    max_max_age_seconds: float = 300.0
    """KSA_JWKS_REFRESH_SECONDS: keys are fetched again within this, whatever max-age says, so a
    key the cluster stopped publishing stops being accepted within it too."""
    stale_if_error_seconds: float = 86400.0
    """How long past their max-age the last good keys serve while refreshes fail."""
    refresh_at_fraction: float = 0.8
    """Background refresh once this fraction of the max-age has passed."""
    retry_min_seconds: float = 5.0
    retry_max_seconds: float = 300.0
    refresh_jitter: float = 0.2
    """The background refresh lands anywhere in ±half this fraction of its interval, so replicas
    started together (a rollout) do not refresh in the same second ever after."""
    retry_jitter: float = 0.5
    """Each retry after a failed fetch waits its backoff less up to this fraction of it ("equal
    jitter"), so replicas that lost the API server together do not return to it together. The
    unknown-kid path has none: its delay is a bound on accepting a rotated key."""
    timeout_seconds: float = TOTAL_TIMEOUT_SECONDS
    """Bound on each request, connection to last byte."""

    def __post_init__(self) -> None:
        if not self.issuers:
            raise ValueError("at least one issuer is required")
        for name, url in (
            ("discovery_url", self.discovery_url),
            ("jwks_url", self.jwks_url),
            ("api_server", self.api_server),
        ):
            if url is not None and origin_of(url)[0] not in ("https", "http"):
                raise ValueError(f"{name} must be an https:// (or http://) URL, not {url!r}")
        if not 0 < self.refresh_at_fraction <= 1:
            raise ValueError("refresh_at_fraction must be in (0, 1]")
        if not 0 < self.min_max_age_seconds <= self.max_max_age_seconds:
            raise ValueError("max-age bounds must be positive and ordered")
        if not 0 < self.timeout_seconds <= TOTAL_TIMEOUT_SECONDS:
            raise ValueError(f"timeout_seconds must be in (0, {TOTAL_TIMEOUT_SECONDS:g}]")
        if self.cooldown_seconds < 0 or self.stale_if_error_seconds < 0:
            raise ValueError("cooldown and stale-if-error must not be negative")
        if not (0 <= self.refresh_jitter < 0.5 and 0 <= self.retry_jitter <= 1):
            raise ValueError("refresh_jitter must be in [0, 0.5), retry_jitter in [0, 1]")

    @property
    def token_origin(self) -> str:
        return self.api_server or self.discovery_url


class _Discovery(msgspec.Struct):
    issuer: str
    jwks_uri: str


_discovery_decoder = msgspec.json.Decoder(_Discovery)


class _FetchFailed(Exception):
    """A refresh failed; the message says why (no token in it)."""


class ClusterJwksKeyProvider(KeyProvider, Lifecycle):
    """Keys fetched with our own token (default RBAC lets only service accounts read them),
    cached for the response's max-age, refreshed in the background, on an unknown kid at most
    once per cooldown, and kept through outages (stale-if-error) for up to a day."""

    def __init__(
        self,
        config: ClusterJwksConfig,
        client: httpx.AsyncClient,
        token_source: TokenSource,
        clock: Clock = time.time,
        statistics: Statistics = NO_STATISTICS,
        *,
        nap: Callable[[float], Awaitable[None]] | None = None,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        """`nap(seconds)` waits for the background refresh (default: at most a second at a
        time, re-reading the clock); `uniform()` in [0, 1) draws the jitter. Both are for
        simulations with a faster clock and for tests."""
        self.config = config
        self._nap = nap or _short_nap
        self._uniform = uniform
        self._statistics = statistics
        self._client = client
        self._token_source = token_source
        self._clock = clock
        self.fetch_outcomes: Counter[str] = Counter()
        """Fetch results by outcome (`ok`, `not_modified`, `error`), for metrics."""
        self.last_error: str | None = None
        """Why the last fetch failed (None after a success)."""
        self._keys: dict[str, PublicJwk] = {}
        self._kids: frozenset[str] = frozenset()
        self._fresh_until = float("-inf")
        self._usable_until = float("-inf")
        self._next_refresh_at = float("-inf")
        self._last_attempt = float("-inf")
        self._last_miss_refresh = float("-inf")
        self._failures = 0
        self._etag: str | None = None
        self._jwks_location: str | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the keys now (so be2 is ready before traffic) and keep them fresh in the
        background. A failure is logged, not raised: readiness reports it."""
        await self._shared_fetch()
        if self._background is None:
            self._background = asyncio.create_task(self._refresh_forever(), name="jwks-refresh")

    async def close(self) -> None:
        """Stop the background refresh and any fetch in flight (the client is not closed)."""
        for task in (self._background, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._background = None
        self._inflight = None

    # --- KeyProvider ----------------------------------------------------------------------

    async def get_key(self, kid: str) -> PublicJwk:
        """Return the key with this kid, refreshing once if unknown (single-flight, at most
        once per cooldown); raises UnknownKey or KeysUnavailable."""
        now = self._clock()
        if now < self._usable_until:
            key = self._keys.get(kid)
            if key is not None:
                if now >= self._fresh_until:
                    self._refresh_soon(now)
                return key
            await self._refresh_for_unknown_kid()
        else:
            await self._ensure_keys()
        key = self._usable().get(kid)
        if key is None:
            raise UnknownKey(f"no key with kid {kid!r} in the cluster's JWKS")
        return key

    async def refresh(self) -> None:
        """Fetch now (sharing a fetch in flight); raises KeysUnavailable if that fails and no
        keys are held."""
        await self._shared_fetch()
        self._usable()

    def known_kids(self) -> frozenset[str]:
        """The kids held and still usable, without any I/O."""
        return self._kids if self._clock() < self._usable_until else frozenset()

    # --- refresh policy -------------------------------------------------------------------

    def _usable(self) -> dict[str, PublicJwk]:
        if self._clock() < self._usable_until:
            return self._keys
        raise KeysUnavailable(
            "the cluster's signing keys could not be loaded"
            + (f": {self.last_error}" if self.last_error else "")
        )

    async def _ensure_keys(self) -> None:
        if self._clock() < self._usable_until:
            return
        # No usable keys: join a fetch in flight, or start one at most once per cooldown (not
        # per backoff: without keys be2 answers nothing; the background loop backs off).
        if self._inflight is not None or self._cooled(self._clock()):
            await self._shared_fetch()

    def _refresh_soon(self, now: float) -> None:
        # Past max-age and no refresher running (start() not called, or it is between naps):
        # serve the stale key now and fetch behind it, at most once per cooldown.
        if self._inflight is None and self._due(now):
            self._start_fetch()

    def _due(self, now: float) -> bool:
        # With usable keys, on-demand fetches keep to the retry schedule: during an outage,
        # traffic must not turn the backoff (and its jitter) into one attempt per cooldown.
        return self._cooled(now) and (self._failures == 0 or now >= self._next_refresh_at)

    def _cooled(self, now: float) -> bool:
        return now - self._last_attempt >= self.config.cooldown_seconds

    async def _refresh_for_unknown_kid(self) -> None:
        # A kid we do not know is either a key rotated in since our last fetch (fetch now, as
        # Envoy/Istio failed to: envoyproxy/envoy#39643) or made up (do not fetch per request).
        if self._inflight is not None:
            await self._shared_fetch()
            return
        now = self._clock()
        if now - self._last_miss_refresh < self.config.cooldown_seconds:
            return
        self._last_miss_refresh = now
        await self._shared_fetch()

    def _start_fetch(self) -> asyncio.Task[None]:
        task = self._inflight
        if task is None:
            task = asyncio.create_task(self._fetch(), name="jwks-fetch")
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        return task

    async def _shared_fetch(self) -> None:
        # Shielded: a caller that gives up (client gone) must not cancel everyone's fetch.
        await asyncio.shield(self._start_fetch())

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _refresh_forever(self) -> None:
        while True:
            delay = self._next_refresh_at - self._clock()
            if delay > 0:
                await self._nap(delay)
                continue
            try:
                await self._shared_fetch()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the refresher die silently
                logger.exception("background JWKS refresh crashed; retrying")
                self._schedule_retry(self._clock())

    # --- one fetch ------------------------------------------------------------------------

    async def _fetch(self) -> None:
        now = self._clock()
        self._last_attempt = now
        try:
            status = await self._fetch_keys()
        except _FetchFailed as exc:
            self._failed(str(exc), now)
            return
        except Exception as exc:  # a bug must fail closed, not escape to every waiter
            logger.exception("unexpected error while fetching the JWKS")
            self._failed(f"unexpected {type(exc).__name__}", now)
            return
        self.fetch_outcomes[status] += 1
        self._statistics.key_fetch(status)
        if self.last_error is not None:
            logger.info("JWKS fetch works again (%d keys)", len(self._keys))
        self.last_error = None
        self._failures = 0

    async def _fetch_keys(self) -> str:
        try:
            token = self._token_source.current_token()
        except TokenUnavailable as exc:
            raise _FetchFailed(f"our own token is unavailable: {exc.detail}") from None
        location = await self._discover(token)
        headers = {"If-None-Match": self._etag} if self._etag and self._keys else None
        response = await self._get(location, token, "JWKS", headers)
        fetched_at = self._clock()
        if response.status == 304 and self._keys:
            self._set_expiry(fetched_at, response.headers)
            return "not_modified"
        if response.status != 200:
            raise _FetchFailed(_status_reason("JWKS", location, response.status))
        try:
            keys, skipped = parse_jwks(response.body)
        except ValueError as exc:
            raise _FetchFailed(f"JWKS from {location}: {exc}") from None
        if skipped:
            logger.info("JWKS from %s: skipped %d unusable entries", location, skipped)
        self._keys = {key.kid: key for key in keys}
        self._kids = frozenset(self._keys)
        self._etag = response.headers.get("etag")
        self._set_expiry(fetched_at, response.headers)
        return "ok"

    async def _discover(self, token: str) -> str:
        url = self.config.discovery_url
        response = await self._get(url, token, "discovery", None)
        if response.status != 200:
            raise _FetchFailed(_status_reason("discovery", url, response.status))
        try:
            document = _discovery_decoder.decode(response.body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            raise _FetchFailed(
                f"discovery document from {url} is not JSON with `issuer` and `jwks_uri`"
            ) from None
        if document.issuer not in self.config.issuers:
            raise _FetchFailed(
                f"the cluster's issuer is {document.issuer!r} (from {url}), which is not one of "
                f"KSA_ISSUER {sorted(self.config.issuers)}; set KSA_ISSUER to it"
            )
        if self.config.jwks_url:
            return self.config.jwks_url
        return self._rebase(document.jwks_uri)

    def _rebase(self, jwks_uri: str) -> str:
        # kube-apiserver advertises https://<advertise address>/openid/v1/jwks, often a node IP
        # or host pods cannot reach or outside the serving certificate's SANs
        # (aws/containers-roadmap#2234): the discovery URL's origin serves the same path.
        try:
            advertised = httpx.URL(jwks_uri)
            origin = httpx.URL(self.config.discovery_url)
            if advertised.scheme not in ("https", "http") or not advertised.host:
                raise ValueError(jwks_uri)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise _FetchFailed("discovery's `jwks_uri` is not an absolute URL") from None
        if origin_of(advertised) == origin_of(origin):
            return str(advertised)
        rebased = str(origin.copy_with(path=advertised.path, query=advertised.query or None))
        if self._jwks_location != rebased:
            logger.info(
                "discovery advertises jwks_uri %s on another origin; fetching %s instead "
                "(set KSA_JWKS_URL to override)",
                jwks_uri,
                rebased,
            )
            self._jwks_location = rebased
        return rebased

    async def _get(
        self, url: str, token: str, what: str, headers: dict[str, str] | None
    ) -> ApiResponse:
        try:
            response = await request(
                self._client,
                "GET",
                url,
                api_server=self.config.token_origin,
                token=token,
                headers=headers,
                total_seconds=self.config.timeout_seconds,
            )
        except ApiServerError as exc:
            raise _FetchFailed(f"{what}: {exc.reason}") from None
        return response

    def _set_expiry(self, fetched_at: float, headers: httpx.Headers) -> None:
        max_age = _max_age(headers.get("cache-control", ""), self.config)
        self._fresh_until = fetched_at + max_age
        self._usable_until = self._fresh_until + self.config.stale_if_error_seconds
        self._next_refresh_at = fetched_at + _refresh_delay(self.config, max_age, self._uniform())

    def _failed(self, reason: str, now: float) -> None:
        self.fetch_outcomes["error"] += 1
        self._statistics.key_fetch("error")
        first = reason != self.last_error
        self.last_error = reason
        self._failures += 1
        self._schedule_retry(now)
        if now < self._usable_until:
            if first:
                logger.warning(
                    "JWKS refresh failed (%s); keeping %d keys until %s at the latest",
                    reason,
                    len(self._keys),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._usable_until)),
                )
        else:
            logger.error("cannot load the cluster's signing keys: %s", reason)

    def _schedule_retry(self, now: float) -> None:
        self._next_refresh_at = now + _retry_delay(self.config, self._failures, self._uniform())


def _refresh_delay(config: ClusterJwksConfig, max_age: float, draw: float) -> float:
    # ±half the jitter fraction around the refresh point, never past the max-age.
    spread = 1 + config.refresh_jitter * (draw - 0.5)
    return max_age * min(config.refresh_at_fraction * spread, 1.0)


def _retry_delay(config: ClusterJwksConfig, failures: int, draw: float) -> float:
    backoff = config.retry_min_seconds * 2.0 ** min(failures - 1, 16)
    delay = min(max(backoff, config.retry_min_seconds), config.retry_max_seconds)
    return delay * (1 - config.retry_jitter * draw)


async def _short_nap(seconds: float) -> None:
    # Short naps that re-read the clock: a suspended VM or a stepped clock is noticed within a
    # second instead of after a long sleep.
    await asyncio.sleep(min(seconds, _MAX_NAP_SECONDS))


def _max_age(cache_control: str, config: ClusterJwksConfig) -> float:
    if _NO_CACHE.search(cache_control):
        return config.min_max_age_seconds
    match = _MAX_AGE.search(cache_control)
    seconds = float(match.group(1)) if match else config.default_max_age_seconds
    return min(max(seconds, config.min_max_age_seconds), config.max_max_age_seconds)


def _status_reason(what: str, url: str, status: int) -> str:
    if status in (401, 403):
        # Default RBAC binds system:service-account-issuer-discovery to all service accounts
        # (bootstrappolicy/policy.go); a 401/403 means our token was refused or RBAC changed.
        return (
            f"{what} at {url} answered {status}: the API server refused our service account "
            "token (needs the system:service-account-issuer-discovery role)"
        )
    return f"{what} at {url} answered HTTP {status}"
