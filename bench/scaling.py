"""What N be2 replicas ask of the API server, measured: many key providers and verifiers in one
process, on a virtual clock, against the devcluster (which counts every request by path).

    .venv/bin/python -m bench.scaling            # all situations, 1/10/100 replicas (~5 min)
    .venv/bin/python -m bench.scaling --quick    # shorter runs, for a look

Each replica (a worker, really: each has its own keys) is the real `ClusterJwksKeyProvider` or
`CachingVerifier` over `TokenReviewVerifier`, talking HTTPS to the devcluster. Time is virtual:
the clock stands still while any request is in flight and then jumps to the next moment some
replica wakes, so an hour takes seconds, and requests that replicas send in the same second
are counted in that second however long the devcluster takes to answer them all. The
devcluster's own counters are the totals; the time of each request is taken as it leaves.

Writes docs/scaling/*.png and the tables between the markers in docs/SCALING.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import logging
import random
import re
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adapters.cluster_jwks import ClusterJwksConfig, ClusterJwksKeyProvider
from adapters.projected_token_file import ProjectedTokenFile
from adapters.token_review import TokenReviewConfig, TokenReviewVerifier
from adapters.verified_cache import CachingVerifier
from domain.errors import AuthError
from entrypoints.container import REVIEW_CACHE_MAX_ENTRIES, REVIEW_CACHE_TTL_SECONDS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SCALING.md"
FIGURES = ROOT / "docs" / "scaling"
RESULTS = FIGURES / "runs.json"
REPLICAS = (1, 10, 100)
HOUR = 3600.0
KEY_PATHS = ("/.well-known/openid-configuration", "/openid/v1/jwks")
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
# TokenReview: distinct callers, each calling once a second, at a replica picked at random.
CALLERS = 20
CALLS_PER_SECOND = 1.0


# --- virtual time ---------------------------------------------------------------------------


class VirtualTime:
    """A clock that moves only when `advance` is called, and naps that end when it does."""

    def __init__(self, start: float) -> None:
        self.start = self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), self._order, future))
        await future

    def next_wake(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():  # cancelled naps
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self) -> None:
        wake = self.next_wake()
        if wake is None:
            return
        self.now = max(self.now, wake)
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


class _Tracked(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._inner, self._done, self._closed = inner, done, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._closed:
                self._closed = True
                self._done()


class Recorder(httpx.AsyncBaseTransport):
    """The replicas' transport: notes when each request leaves (virtual time) and how many are
    in flight, so the clock waits for them."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: VirtualTime) -> None:
        self._inner, self._clock = inner, clock
        self.in_flight = 0
        self.sent: list[tuple[float, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self._clock.now, request.url.path))
        self.in_flight += 1
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self.in_flight -= 1
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Tracked(response.stream, self._finished),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    def _finished(self) -> None:
        self.in_flight -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _settle(recorder: Recorder) -> None:
    # Quiet = nothing in flight for many turns of the event loop in a row (a replica between
    # its discovery and JWKS requests takes a few turns without I/O).
    quiet = 0
    while quiet < 40:
        await asyncio.sleep(0 if recorder.in_flight == 0 else 0.0005)
        quiet = quiet + 1 if recorder.in_flight == 0 else 0


async def run_until(clock: VirtualTime, recorder: Recorder, end: float) -> None:
    """Let the replicas run until virtual time `end`."""
    while True:
        await _settle(recorder)
        wake = clock.next_wake()
        if wake is None or wake > end:
            break
        clock.advance()
    clock.now = end


# --- one situation --------------------------------------------------------------------------


@dataclass
class Run:
    """One measured situation: what the devcluster counted, and when the requests were sent."""

    situation: str
    replicas: int
    jitter: bool
    seconds: float
    counted: int
    at_start: int
    """Requests of the rollout's own first fetch, left out of the hourly figure."""
    bins: dict[int, int]
    """Requests sent in each second since the start (sparse)."""
    sent: list[tuple[float, str]] = field(default_factory=list, repr=False)
    start: float = 0.0

    @classmethod
    def of(
        cls,
        situation: str,
        replicas: int,
        jitter: bool,
        seconds: float,
        counted: int,
        start: float,
        sent: list[tuple[float, str]],
    ) -> Run:
        bins = Counter(int(t - start) for t, _ in sent)
        at_start = sum(1 for t, _ in sent if t <= start)
        return cls(situation, replicas, jitter, seconds, counted, at_start, dict(bins), sent, start)

    @property
    def formula_per_hour(self) -> float:
        if self.situation == "tokenreview":
            return review_formula(self.replicas) * HOUR
        config = FORMULA_CONFIG
        if not self.jitter:
            config = msgspec.structs.replace(config, refresh_jitter=0.0, retry_jitter=0.0)
        return key_formula(self.situation, self.replicas, config)

    def per_hour(self) -> float:
        """Requests per hour after the start-up fetch (the devcluster's count, scaled)."""
        return (self.counted - self.at_start) * HOUR / self.seconds

    def peak_per_second(self, after: int = 60) -> int:
        """Most requests sent in one second, from `after` seconds on (past the rollout)."""
        return max((n for second, n in self.bins.items() if second >= after), default=0)

    def timeline(self) -> list[int]:
        return [self.bins.get(s, 0) for s in range(int(self.seconds) + 1)]

    def as_json(self) -> dict[str, Any]:
        fields = ("situation", "replicas", "jitter", "seconds", "counted", "at_start")
        return {**{f: getattr(self, f) for f in fields}, "bins": self.bins}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        bins = {int(second): int(n) for second, n in data.pop("bins").items()}
        return cls(**data, bins=bins)


@dataclass
class Bench:
    """The devcluster, the be2 pod's token and CA, and the scale of the runs."""

    cluster: Any
    quick: bool
    runs: list[Run] = field(default_factory=list)

    def counters(self) -> Counter[str]:
        state = self.cluster.state()
        return Counter({k: int(v) for k, v in state.items() if k.endswith("_requests")})

    @contextlib.asynccontextmanager
    async def replicas(self) -> AsyncIterator[tuple[VirtualTime, Recorder, httpx.AsyncClient]]:
        clock = VirtualTime(time.time())
        context = ssl.create_default_context(cafile=str(self.cluster.pod("be2").ca_file))
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        recorder = Recorder(httpx.AsyncHTTPTransport(verify=context, limits=limits), clock)
        # Kept-alive connections: a hundred replicas' TLS handshakes at one virtual instant
        # would take the devcluster longer than the providers' 5 s bound on a fetch.
        client = httpx.AsyncClient(
            transport=recorder, follow_redirects=False, trust_env=False, timeout=30
        )
        try:
            yield clock, recorder, client
        finally:
            await client.aclose()

    def providers(
        self, count: int, client: httpx.AsyncClient, clock: VirtualTime, jitter: bool
    ) -> list[ClusterJwksKeyProvider]:
        config = ClusterJwksConfig(
            discovery_url=self.cluster.discovery_url,
            issuers=frozenset({self.cluster.issuer}),
            api_server=self.cluster.url,
            **({} if jitter else {"refresh_jitter": 0.0, "retry_jitter": 0.0}),
        )
        token = ProjectedTokenFile(self.cluster.pod("be2").token_file, clock=clock)
        draws = random.Random(count * 7919 + jitter)
        return [
            ClusterJwksKeyProvider(
                config,
                client,
                token,
                clock,
                nap=clock.sleep,
                uniform=random.Random(draws.random()).random,
            )
            for _ in range(count)
        ]


# --- the situations -------------------------------------------------------------------------


Driver = Callable[[Bench, list[ClusterJwksKeyProvider], VirtualTime], Awaitable[None]]


async def _steady(bench: Bench, fleet: list[ClusterJwksKeyProvider], clock: VirtualTime) -> None:
    return None


async def _rotation(bench: Bench, fleet: list[ClusterJwksKeyProvider], clock: VirtualTime) -> None:
    # Halfway, the cluster rotates its signing key; within the next minute a token signed with
    # the new key reaches every replica.
    async def caller(provider: ClusterJwksKeyProvider, delay: float, kid: str) -> None:
        await clock.sleep(delay)
        await provider.get_key(kid)

    async def rotate() -> None:
        await clock.sleep(HOUR / 2)
        kid = bench.cluster.admin("/admin/signing-keys/rotate", {})["kid"]
        spread = random.Random(1)
        for provider in fleet:
            _background(caller(provider, spread.uniform(0, 60), kid))

    _background(rotate())


async def _flood(bench: Bench, fleet: list[ClusterJwksKeyProvider], clock: VirtualTime) -> None:
    # Every replica gets a token with a made-up kid every second.
    made_up = iter(f"made-up-{n}" for n in range(10**9))

    async def attacker(provider: ClusterJwksKeyProvider) -> None:
        while True:
            await clock.sleep(1.0)
            with contextlib.suppress(AuthError):
                await provider.get_key(next(made_up))

    for provider in fleet:
        _background(attacker(provider))


async def _outage(bench: Bench, fleet: list[ClusterJwksKeyProvider], clock: VirtualTime) -> None:
    # The API server answers 503 from now on; callers keep coming (a known kid every 10 s).
    bench.cluster.admin("/admin/faults", {"keys": "outage"})
    kid = next(iter(fleet[0].known_kids()))

    async def caller(provider: ClusterJwksKeyProvider) -> None:
        while True:
            await clock.sleep(10.0)
            with contextlib.suppress(AuthError):
                await provider.get_key(kid)

    for provider in fleet:
        _background(caller(provider))


_TASKS: set[asyncio.Task[None]] = set()


def _background(work: Awaitable[None]) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def _cancel_background() -> None:
    for task in list(_TASKS):
        task.cancel()
    await asyncio.gather(*_TASKS, return_exceptions=True)


SITUATIONS: dict[str, Driver] = {
    "steady": _steady,
    "rotation": _rotation,
    "flood": _flood,
    "outage": _outage,
}


async def measure_keys(bench: Bench, situation: str, count: int, jitter: bool = True) -> Run:
    seconds = HOUR if not bench.quick else HOUR / 4
    if situation == "flood":
        # Its requests dominate the run time, and its rate is steady from the first second.
        seconds = 600.0 if count < 100 else 300.0
    before = bench.counters()
    async with bench.replicas() as (clock, recorder, client):
        fleet = bench.providers(count, client, clock, jitter)
        # A rollout: every replica starts (and fetches) at the same moment.
        await asyncio.gather(*(provider.start() for provider in fleet))
        start = clock.now
        await SITUATIONS[situation](bench, fleet, clock)
        try:
            await run_until(clock, recorder, start + seconds)
        finally:
            await _cancel_background()
            await asyncio.gather(*(provider.close() for provider in fleet))
            bench.cluster.admin("/admin/faults", {"keys": "ok"})
    counted = bench.counters() - before
    total = counted["discovery_requests"] + counted["jwks_requests"]
    return Run.of(situation, count, jitter, seconds, total, start, recorder.sent)


# --- TokenReview ----------------------------------------------------------------------------


async def measure_reviews(bench: Bench, count: int) -> Run:
    seconds = 180.0 if not bench.quick else 60.0
    cluster = bench.cluster
    tokens = [cluster.mint(f"caller-{n}", expiration_seconds=3600) for n in range(CALLERS)]
    before = bench.counters()
    async with bench.replicas() as (clock, recorder, client):
        config = TokenReviewConfig(
            api_server=cluster.url, audiences=(cluster.api_audience,), issuers=(cluster.issuer,)
        )
        token = ProjectedTokenFile(cluster.pod("be2").token_file, clock=clock)
        verifiers = [
            CachingVerifier(
                TokenReviewVerifier(client, token, config, clock),
                clock,
                ttl_seconds=REVIEW_CACHE_TTL_SECONDS,
                max_entries=REVIEW_CACHE_MAX_ENTRIES,
            )
            for _ in range(count)
        ]
        pick = random.Random(count)
        start = clock.now

        async def caller(own: str) -> None:
            while True:
                await clock.sleep(1 / CALLS_PER_SECOND)
                await pick.choice(verifiers).verify(own)

        for own in tokens:
            _background(caller(own))
        try:
            await run_until(clock, recorder, start + seconds)
        finally:
            await _cancel_background()
    counted = bench.counters() - before
    total = counted["tokenreview_requests"]
    return Run.of("tokenreview", count, False, seconds, total, start, recorder.sent)


# --- the formulas ---------------------------------------------------------------------------

# The formulas read the defaults the replicas ran with (the URL is never used).
FORMULA_CONFIG = ClusterJwksConfig(discovery_url="https://api/", issuers=frozenset({"issuer"}))


def refresh_interval(config: ClusterJwksConfig, max_age: float = 3600.0) -> float:
    """Seconds between background refreshes (mean): the refresh fraction of the max-age held."""
    held = min(max(max_age, config.min_max_age_seconds), config.max_max_age_seconds)
    return config.refresh_at_fraction * held


def outage_attempts(config: ClusterJwksConfig, seconds: float = HOUR) -> float:
    """Fetch attempts in `seconds` of outage: the first refresh fails, then the backoff (its
    mean with jitter) doubles from the minimum to the maximum."""
    t, attempts, failures = refresh_interval(config), 0, 0
    mean = 1 - config.retry_jitter / 2
    while t <= seconds:
        attempts += 1
        failures += 1
        backoff = config.retry_min_seconds * 2 ** min(failures - 1, 16)
        t += min(max(backoff, config.retry_min_seconds), config.retry_max_seconds) * mean
    return attempts


def key_formula(situation: str, workers: int, config: ClusterJwksConfig) -> float:
    """Requests an hour to discovery + JWKS from `workers` key providers (replicas x workers)."""
    steady = 2 * HOUR / refresh_interval(config)  # each refresh: discovery, then JWKS
    per_worker = {
        "steady": steady,
        # One unknown-kid fetch each for the new key; it restarts the refresh timer, so it
        # brings the next refreshes forward by half an interval on average: +1 request.
        "rotation": steady + 1,
        # An unknown-kid fetch at most once per interval; each also restarts the refresh timer.
        "flood": 2 * HOUR / min(config.cooldown_seconds, refresh_interval(config)),
        "outage": outage_attempts(config),  # discovery fails: one request an attempt
    }[situation]
    return workers * per_worker


def review_formula(workers: int, callers: int = CALLERS, rate: float = CALLS_PER_SECOND) -> float:
    """TokenReviews a second: each (worker, caller) pair asks again at its first call after its
    cached answer (TTL seconds) ran out; a caller reaches a given worker every workers/rate s."""
    ttl = REVIEW_CACHE_TTL_SECONDS
    per_pair = 1 / (ttl + (workers - 1) / rate)
    return min(callers * rate, workers * callers * per_pair)


# --- output ---------------------------------------------------------------------------------


def table(runs: list[Run]) -> str:
    """Every situation with jitter on (TokenReview has none), against its formula."""
    chosen = [r for r in runs if r.jitter or r.situation == "tokenreview"]
    return _markdown(
        ["situation", "replicas x workers"],
        chosen,
        lambda run: [run.situation, str(run.replicas)],
        ratio=True,
    )


def herd_table(runs: list[Run]) -> str:
    """100 holders, steady state and outage, with jitter and without."""
    chosen = [r for r in runs if r.replicas == 100 and r.situation in ("steady", "outage")]
    return _markdown(
        ["situation, 100 replicas", "jitter"],
        chosen,
        lambda run: [run.situation, "on" if run.jitter else "off"],
        ratio=False,
    )


def _markdown(
    names: list[str], runs: list[Run], label: Callable[[Run], list[str]], *, ratio: bool
) -> str:
    columns = [*names, "formula / hour", "measured / hour"]
    columns += ["measured / formula"] if ratio else []
    columns.append("peak / s after start-up")
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(names) + "---:|" * (len(columns) - len(names)),
    ]
    for run in runs:
        cells = [*label(run), f"{run.formula_per_hour:,.0f}", f"{run.per_hour():,.0f}"]
        if ratio:
            cells.append(f"{run.per_hour() / run.formula_per_hour:.2f}")
        cells.append(str(run.peak_per_second()))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[Run]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(8, 5.5))
    for situation, colour in zip(
        ("steady", "rotation", "flood", "outage", "tokenreview"),
        ("C0", "C1", "C3", "C2", "C4"),
        strict=True,
    ):
        chosen = [
            r for r in runs if r.situation == situation and (r.jitter or situation == "tokenreview")
        ]
        if not chosen:
            continue
        replicas = [r.replicas for r in chosen]
        # The formula at every count from 1 to 100, as a line.
        counts = range(1, 101)
        formula = [
            review_formula(n) * HOUR
            if situation == "tokenreview"
            else key_formula(situation, n, FORMULA_CONFIG)
            for n in counts
        ]
        axes.plot(counts, formula, "-", color=colour, alpha=0.6)
        label = situation if situation != "tokenreview" else "tokenreview (20 callers, 1/s)"
        axes.plot(replicas, [r.per_hour() for r in chosen], "o", color=colour, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("replicas x workers (each with its own keys and cache)")
    axes.set_ylabel("requests to the API server per hour")
    axes.set_title("be2 against the API server: measured (dots) and formula (lines)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(title="situation")
    figure.tight_layout()
    figure.savefig(FIGURES / "requests-per-hour.png", dpi=110)
    plt.close(figure)

    herd = [r for r in runs if r.replicas == 100 and r.situation in ("steady", "outage")]
    figure, panes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for pane, situation in zip(panes, ("steady", "outage"), strict=True):
        for run in (r for r in herd if r.situation == situation):
            line = run.timeline()[:1200]
            label = f"jitter {'on' if run.jitter else 'off'} (peak {run.peak_per_second()}/s)"
            pane.plot(
                range(len(line)),
                line,
                drawstyle="steps-post",
                label=label,
                alpha=0.8 if run.jitter else 0.6,
            )
        pane.set_title(f"100 replicas, {situation}: requests per second at the API server")
        pane.set_ylabel("requests / s")
        pane.legend()
        pane.grid(True, alpha=0.3)
    panes[-1].set_xlabel("seconds since all replicas started (the first 20 minutes)")
    figure.tight_layout()
    figure.savefig(FIGURES / "thundering-herd.png", dpi=110)
    plt.close(figure)


def write_doc(runs: list[Run], took: float) -> None:
    block = (
        f"{table(runs)}\n\n{herd_table(runs)}\n\n"
        f"`python -m bench.scaling` on {time.strftime('%Y-%m-%d')}, virtual time, "
        f"{sum(r.seconds for r in runs) / HOUR:.1f} simulated hours in {took:.0f} s."
    )
    text = DOC.read_text()
    text = re.sub(
        r"(<!-- scaling:begin -->\n).*?(<!-- scaling:end -->)",
        lambda m: m.group(1) + block + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    DOC.write_text(text)


# --- main -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _devcluster(state_dir: Path) -> Iterator[Any]:
    # The test harness is the one way to start the emulator and read its cluster.json.
    from tests.devcluster_harness import start_devcluster

    with start_devcluster(state_dir) as cluster:
        yield cluster


async def measure_all(bench: Bench) -> None:
    for situation in SITUATIONS:
        for count in REPLICAS:
            run = await measure_keys(bench, situation, count)
            bench.runs.append(run)
            _report(run)
    for situation in ("steady", "outage"):
        run = await measure_keys(bench, situation, 100, jitter=False)
        bench.runs.append(run)
        _report(run)
    for count in REPLICAS:
        run = await measure_reviews(bench, count)
        bench.runs.append(run)
        _report(run)


def _report(run: Run) -> None:
    print(
        f"[scaling] {run.situation:<11} {run.replicas:>3} replicas, jitter "
        f"{'on ' if run.jitter else 'off'}: {run.per_hour():>9,.0f}/h "
        f"(formula {run.formula_per_hour:,.0f}), peak {run.peak_per_second()}/s",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter simulated runs")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--render", action="store_true", help=f"redraw from {RESULTS.name} without measuring"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.render:
        saved = json.loads(RESULTS.read_text())
        runs, took = [Run.from_json(run) for run in saved["runs"]], float(saved["took"])
    else:
        # A hundred replicas' warnings about the outage they are told of would drown the report.
        logging.getLogger("adapters").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as tmp, _devcluster(Path(tmp)) as cluster:
            bench = Bench(cluster, args.quick)
            asyncio.run(measure_all(bench))
        runs, took = bench.runs, time.monotonic() - started
    print(table(runs))
    print()
    print(herd_table(runs))
    if not args.no_write:
        FIGURES.mkdir(parents=True, exist_ok=True)
        if not args.render:
            document = {"took": round(took), "runs": [run.as_json() for run in runs]}
            RESULTS.write_text(json.dumps(document, separators=(",", ":")) + "\n")
        plot(runs)
        write_doc(runs, took)
    return 0


if __name__ == "__main__":
    sys.exit(main())
