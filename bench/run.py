"""`make bench`: micro, HTTP and memory figures in one run, printed as one table with targets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from bench import load, serving
from bench.micro import MicroResult, run_micro
from bench.report import Row, render

__all__ = ["Config", "main", "run"]

HELLO = "bench.hello:create_app"
SEED = "bench.seed_baseline:create_app"
BE2 = "entrypoints.be2:create_app"


@dataclass(frozen=True)
class Config:
    """Sizes of one run; `smoke` shrinks everything to check the harness, not the figures."""

    servers: tuple[str, ...] = serving.SERVERS
    micro_samples: int = 200
    micro_repeats: int = 15
    duration: float = 3.0
    warmup: float = 1.0
    rounds: int = 5
    connections: int = 50
    # Fresh-token runs send exactly one request per token (a count, not a duration).
    fresh_requests: int = 4_000
    memory_requests: int = 100_000
    memory_tokens: int = 10_000
    memory_connections: int = 50
    # The targets (ratios measured side by side in this run).
    first_sight_max_floor: float = 2.0
    cache_hit_max_us: float = 5.0
    hit_min_hello: float = 0.80
    hit_min_seed: float = 3.0
    miss_min_seed: float = 2.0
    rss_max_mb: float = 150.0
    cache_max_entries: int = 10_000
    smoke: bool = False


SMOKE = Config(
    micro_samples=20,
    micro_repeats=3,
    duration=1.0,
    warmup=0.2,
    rounds=1,
    connections=4,
    fresh_requests=40,
    memory_requests=300,
    memory_tokens=30,
    memory_connections=4,
    smoke=True,
)


@dataclass
class HttpFigures:
    """Median req/s per (server, app, load) and what else the HTTP runs saw."""

    rps: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # Every round's req/s, in round order: ratios are the medians of per-round ratios.
    samples: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    clean: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    tool: str = ""
    be2_requests: dict[str, int] = field(default_factory=dict)
    jwks_fetches: dict[str, int] = field(default_factory=dict)
    miss_share: dict[str, float | None] = field(default_factory=dict)
    shutdown: dict[tuple[str, str], serving.Shutdown] = field(default_factory=dict)

    def ratio(self, server: str, app: tuple[str, str], base: tuple[str, str]) -> float:
        """The median of per-round ratios of (app, load) to (base, load): each round compares
        runs that were neighbours in time, so the machine's drift cancels."""
        mine, theirs = self.samples[(server, *app)], self.samples[(server, *base)]
        return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


@dataclass
class MemoryFigures:
    server: str
    requests: int
    distinct_tokens: int
    rss_before: int
    rss_after: int
    cache_entries: int | None
    clean: bool
    jwks_fetches: int


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the devcluster and its tokens ----------------------------------------------------------


@contextlib.contextmanager
def _devcluster(state_dir: Path) -> Iterator[Any]:
    # The test harness is the one way to start the emulator and read its cluster.json.
    from tests.devcluster_harness import start_devcluster

    with start_devcluster(state_dir) as cluster:
        yield cluster


def _mint(cluster: Any, count: int, pod: str) -> list[str]:
    """`count` distinct tokens from the devcluster's admin API (its keys: fair to both sides)."""

    async def mint_all() -> list[str]:
        headers = {"Authorization": f"Bearer {cluster.admin_token}"}
        body = {
            "namespace": "default",
            "service_account": "be-sa",
            "audiences": [cluster.api_audience],
            "expiration_seconds": 3600,
            "pod": pod,
        }
        tokens: list[str] = []
        limit = asyncio.Semaphore(64)
        async with httpx.AsyncClient(base_url=cluster.admin_url, timeout=30) as client:

            async def one() -> None:
                async with limit:
                    response = await client.post("/admin/tokens/mint", json=body, headers=headers)
                    response.raise_for_status()
                    tokens.append(response.json()["token"])

            await asyncio.gather(*(one() for _ in range(count)))
        return tokens

    return asyncio.run(mint_all())


def _jwks_requests(cluster: Any) -> int:
    return int(cluster.state().get("jwks_requests", 0))


# --- the three apps ---------------------------------------------------------------------------


def _serve_available() -> bool:
    return importlib.util.find_spec("entrypoints.serve") is not None


def _be2_command(server: str, port: int) -> list[str]:
    if _serve_available():
        # As users run it: `ksa-auth serve be2 --server ...`.
        return [
            sys.executable, "-m", "entrypoints.cli", "serve", "be2",
            "--server", server, "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
    return serving.server_command(server, BE2, port)


def _be2_env(cluster: Any) -> dict[str, str]:
    be2 = cluster.pod("be2")
    return {
        "KSA_TOKEN_FILE": str(be2.token_file),
        "KSA_CA_FILE": str(cluster.ca_file),
        "KSA_API_SERVER": cluster.url,
        "KSA_ISSUER": cluster.issuer,
        "KSA_DISCOVERY_URL": cluster.discovery_url,
        "KSA_AUDIENCES": cluster.api_audience,
        "KSA_ALLOWED_SUBJECTS": "system:serviceaccount:default:be-sa",
        "KSA_VERIFIER": "jwks",
    }


def _seed_env(cluster: Any) -> dict[str, str]:
    return {
        "SEED_JWKS_URL": cluster.jwks_url,
        "SEED_CA_FILE": str(cluster.ca_file),
        "SEED_TOKEN_FILE": str(cluster.pod("be2").token_file),
        "SEED_ISSUER": cluster.issuer,
        "SEED_AUDIENCE": cluster.api_audience,
    }


def _start_be2(server: str, cluster: Any) -> serving.Running:
    port = serving.free_port()
    return serving.start(
        "be2", _be2_command(server, port), port, ready_path="/readyz",
        env=_be2_env(cluster), server=server,
    )  # fmt: skip


def _metric(port: int, name: str) -> float | None:
    status, body = serving.http_get(port, "/metrics")
    if status != 200:
        return None
    total = None
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", re.MULTILINE)
    for match in pattern.finditer(body.decode(errors="replace")):
        total = (total or 0.0) + float(match.group(1))
    return total


def _cache_counts(port: int) -> tuple[float, float] | None:
    hits = _metric(port, "ksa_verified_cache_hits_total")
    misses = _metric(port, "ksa_verified_cache_misses_total")
    if hits is None or misses is None:
        return None
    return hits, misses


# --- HTTP runs --------------------------------------------------------------------------------


def _http(
    config: Config, cluster: Any, reused: str, fresh: list[str], warm: list[str]
) -> HttpFigures:
    reused_tool = "wrk" if load.wrk_available() else "Python generator"
    figures = HttpFigures(tool=f"reused token: {reused_tool}; fresh tokens: Python generator")
    for server in config.servers:
        _log(f"HTTP on {server}: starting hello, seed, be2")
        hello_port, seed_port = serving.free_port(), serving.free_port()
        hello = serving.start(
            "hello", serving.server_command(server, HELLO, hello_port), hello_port,
            ready_path="/", server=server,
        )  # fmt: skip
        seed = serving.start(
            "seed", serving.server_command(server, SEED, seed_port), seed_port,
            ready_path="/openapi.json", env=_seed_env(cluster), server=server,
        )  # fmt: skip
        be2 = _start_be2(server, cluster)
        try:
            _http_rounds(config, figures, server, cluster, reused, fresh, warm, hello, seed, be2)
        finally:
            auth = {"Authorization": f"Bearer {reused}"}
            figures.shutdown[(server, "hello")] = hello.stop(in_flight=("/slow", auth))
            figures.shutdown[(server, "seed")] = seed.stop()
            figures.shutdown[(server, "be2")] = be2.stop(in_flight=("/validate-auth", auth))
    return figures


def _http_rounds(
    config: Config,
    figures: HttpFigures,
    server: str,
    cluster: Any,
    reused: str,
    fresh: list[str],
    warm: list[str],
    hello: serving.Running,
    seed: serving.Running,
    be2: serving.Running,
) -> None:
    reuse = [reused]

    def timed(port: int, seconds: float) -> load.LoadResult:
        path = "/" if port == hello.port else "/validate-auth"
        return load.run_load(port, path, reuse, connections=config.connections, duration=seconds)

    def counted(port: int) -> load.LoadResult:
        # Exactly one request per fresh token, timed to the last answer.
        return load.run_load_count(
            port, "/validate-auth", fresh, connections=config.connections, requests=len(fresh)
        )

    # Warm every app (first requests import lazily, fill caches, open connection pools).
    for app in (hello, seed, be2):
        timed(app.port, config.warmup)
    samples: dict[str, list[float]] = {}
    clean: dict[str, bool] = {}
    be2_requests = 0
    jwks_fetches = 0
    miss_shares: list[float] = []

    def record(name: str, result: load.LoadResult) -> None:
        samples.setdefault(name, []).append(result.rps)
        clean[name] = clean.get(name, True) and result.clean

    def be2_reused() -> load.LoadResult:
        nonlocal be2_requests, jwks_fetches
        before = _jwks_requests(cluster)
        result = timed(be2.port, config.duration)
        jwks_fetches += _jwks_requests(cluster) - before
        be2_requests += result.requests
        return result

    for round_index in range(config.rounds):
        _log(f"HTTP on {server}: round {round_index + 1}/{config.rounds}")
        # be2 runs between the other two, which swap places every round: each comparison is
        # of neighbours in time, and drift in the machine's speed favours neither side.
        first, last = ("hello", "seed") if round_index % 2 == 0 else ("seed", "hello")
        neighbours = {"hello": hello, "seed": seed}
        record(f"{first}/reused", timed(neighbours[first].port, config.duration))
        record("be2/reused", be2_reused())
        record(f"{last}/reused", timed(neighbours[last].port, config.duration))
        # A new be2 process per round: its cache is empty, so every fresh token is a miss.
        cold = _start_be2(server, cluster)
        try:
            # Warm it as the long-lived one was: hits, then misses on tokens kept apart for
            # this, so the measured run sees steady-state misses rather than first calls.
            timed(cold.port, config.warmup)
            load.run_load_count(
                cold.port, "/validate-auth", warm, connections=config.connections,
                requests=len(warm),
            )  # fmt: skip
            # The two fresh-token runs back to back, in turns first: neighbours in time.
            if round_index % 2 == 0:
                record("seed/fresh", counted(seed.port))
            cache_before = _cache_counts(cold.port)
            before = _jwks_requests(cluster)
            result = counted(cold.port)
            jwks_fetches += _jwks_requests(cluster) - before
            cache_after = _cache_counts(cold.port)
            if round_index % 2 == 1:
                record("seed/fresh", counted(seed.port))
        finally:
            cold.stop()
        be2_requests += result.requests
        record("be2/fresh", result)
        _log(
            f"HTTP on {server}: round {round_index + 1}: "
            + ", ".join(f"{name} {values[-1]:,.0f}" for name, values in samples.items())
        )
        if cache_before is not None and cache_after is not None and result.requests:
            miss_shares.append((cache_after[1] - cache_before[1]) / result.requests)
    for name, values in samples.items():
        app_name, kind = name.split("/")
        figures.rps[(server, app_name, kind)] = statistics.median(values)
        figures.samples[(server, app_name, kind)] = values
        figures.clean[(server, app_name, kind)] = clean[name]
    figures.be2_requests[server] = be2_requests
    figures.jwks_fetches[server] = jwks_fetches
    figures.miss_share[server] = min(miss_shares) if miss_shares else None


# --- memory -----------------------------------------------------------------------------------


def _memory(config: Config, cluster: Any, server: str, tokens: list[str]) -> MemoryFigures:
    _log(
        f"memory on {server}: {config.memory_requests} requests over {len(tokens)} distinct tokens"
    )
    be2 = _start_be2(server, cluster)
    try:
        rss_before = be2.rss
        jwks_before = _jwks_requests(cluster)
        result = load.run_load_count(
            be2.port, "/validate-auth", tokens,
            connections=config.memory_connections, requests=config.memory_requests,
        )  # fmt: skip
        rss_after = be2.rss
        entries = _metric(be2.port, "ksa_verified_cache_entries")
        return MemoryFigures(
            server=server,
            requests=result.requests,
            distinct_tokens=len(tokens),
            rss_before=rss_before,
            rss_after=rss_after,
            cache_entries=int(entries) if entries is not None else None,
            clean=result.clean,
            jwks_fetches=_jwks_requests(cluster) - jwks_before,
        )
    finally:
        be2.stop()


# --- the table --------------------------------------------------------------------------------


def _default_server() -> str | None:
    """What `ksa-auth serve be2` runs when no --server is given."""
    if not _serve_available():
        return None
    from entrypoints import cli, serve

    try:
        args = cli.build_parser().parse_args(["serve", "be2"])
    except SystemExit:
        return None
    server = getattr(args, "server", None) or getattr(serve, "DEFAULT_SERVER", None)
    return server if isinstance(server, str) else None


def _rows(
    config: Config, micro: MicroResult, http: HttpFigures, memory: MemoryFigures, winner: str
) -> list[Row]:
    ns, ratio = micro.ns, micro.to_floor

    def us(name: str) -> str:
        return f"{ns[name] / 1000:.1f} us"

    def to_seed(name: str) -> float:
        # The seed's in-process cost (PyJWKClient + jwt.decode), ratios of per-repeat ratios.
        return ratio[name] / ratio["pyjwt_jwks_client"]

    rows = [
        Row("floor: RSA-2048 verify + b64url + msgspec parse", us("floor"), 1.0,
            to_seed=to_seed("floor")),
        Row("JoseVerifier, first sight (cache off)", us("jose_first_sight"),
            ratio["jose_first_sight"], to_seed=to_seed("jose_first_sight"),
            target=f"<= {config.first_sight_max_floor:.1f}x floor",
            ok=ratio["jose_first_sight"] <= config.first_sight_max_floor),
        Row("CachingVerifier hit", us("cache_hit"), ratio["cache_hit"],
            to_seed=to_seed("cache_hit"), target=f"<= {config.cache_hit_max_us:.0f} us",
            ok=ns["cache_hit"] / 1000 <= config.cache_hit_max_us),
        Row("PyJWT jwt.decode, key pre-fetched", us("pyjwt"), ratio["pyjwt"],
            to_seed=to_seed("pyjwt")),
        Row("PyJWT PyJWKClient + jwt.decode (seed, in-process)", us("pyjwt_jwks_client"),
            ratio["pyjwt_jwks_client"], to_seed=1.0),
        Row("joserfc jwt.decode + JWTClaimsRegistry", us("joserfc"), ratio["joserfc"],
            to_seed=to_seed("joserfc")),
    ]  # fmt: skip
    for server in config.servers:
        judged = server == winner
        paired = functools.partial(http.ratio, server)

        hello, seed, be2 = ("hello", "reused"), ("seed", "reused"), ("be2", "reused")
        hit_to_hello, hit_to_seed = paired(be2, hello), paired(be2, seed)
        miss_to_seed = paired(("be2", "fresh"), ("seed", "fresh"))
        mark = "" if judged else " (info)"

        def rps(key: tuple[str, str, str]) -> str:
            return f"{http.rps[key]:,.0f} req/s" + ("" if http.clean[key] else " NOT ALL 2xx")

        share = http.miss_share.get(server)
        share_text = f", {share:.0%} misses" if share is not None else ""
        rows += [
            Row(f"{server}: Litestar hello-world", rps((server, "hello", "reused")),
                to_hello=1.0, to_seed=paired(hello, seed)),
            Row(f"{server}: seed FastAPI+PyJWKClient, reused token",
                rps((server, "seed", "reused")), to_hello=paired(seed, hello),
                to_seed=1.0),
            Row(f"{server}: be2 /validate-auth, reused token", rps((server, "be2", "reused")),
                to_hello=hit_to_hello, to_seed=hit_to_seed,
                target=f">= {config.hit_min_hello:.0%} hello, >= {config.hit_min_seed:.0f}x seed"
                + mark,
                ok=(hit_to_hello >= config.hit_min_hello
                    and hit_to_seed >= config.hit_min_seed
                    and http.clean[(server, "be2", "reused")]) if judged else None),
            Row(f"{server}: seed, fresh token per request", rps((server, "seed", "fresh")),
                to_hello=paired(("seed", "fresh"), hello), to_seed=1.0),
            Row(f"{server}: be2, fresh token per request{share_text}",
                rps((server, "be2", "fresh")), to_hello=paired(("be2", "fresh"), hello),
                to_seed=miss_to_seed,
                target=f">= {config.miss_min_seed:.0f}x seed (fresh)" + mark,
                ok=(miss_to_seed >= config.miss_min_seed
                    and http.clean[(server, "be2", "fresh")]
                    and (share is None or share >= 0.99)) if judged else None),
        ]  # fmt: skip
    for server in config.servers:
        fetches = http.jwks_fetches[server]
        requests = http.be2_requests[server]
        rows.append(
            Row(f"{server}: be2 JWKS fetches in steady state",
                f"{fetches} in {requests:,} requests", target="0 per request",
                ok=fetches == 0)
        )  # fmt: skip
    for server in config.servers:
        for app in ("hello", "seed", "be2"):
            shutdown = http.shutdown[(server, app)]
            what = f"exit {shutdown.returncode} in {shutdown.seconds:.2f} s"
            if shutdown.in_flight_status is not None or app != "seed":
                what += f", in-flight -> {shutdown.in_flight_status}"
            graceful = (
                shutdown.graceful
                if app != "seed"
                else shutdown.returncode in (0, -15) and shutdown.seconds < 15
            )
            rows.append(Row(f"{server}: SIGTERM {app}", what, target="graceful", ok=graceful))
    mb = memory.rss_after / 2**20
    rows.append(
        Row(f"{memory.server}: be2 RSS after {memory.requests:,} requests, "
            f"{memory.distinct_tokens:,} tokens",
            f"{mb:.1f} MB (start {memory.rss_before / 2**20:.1f} MB)",
            target=f"<= {config.rss_max_mb:.0f} MB", ok=mb <= config.rss_max_mb and memory.clean)
    )  # fmt: skip
    entries = memory.cache_entries
    rows.append(
        Row(f"{memory.server}: be2 verified-token cache size",
            "not exposed" if entries is None else f"{entries:,} entries",
            target=f"<= {config.cache_max_entries:,} entries",
            ok=entries is not None and entries <= config.cache_max_entries)
    )  # fmt: skip
    default = _default_server()
    rows.append(
        Row("ASGI server: measured winner (be2 reused-token req/s)",
            f"{winner} (default of `ksa-auth serve`: {default or 'unknown'})",
            target="default = winner", ok=default == winner)
    )  # fmt: skip
    return rows


def _winner(config: Config, http: HttpFigures) -> str:
    return max(config.servers, key=lambda server: http.rps[(server, "be2", "reused")])


def machine() -> str:
    """nproc, the CPU model and the Python version: what the figures depend on."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def run(config: Config) -> tuple[str, int]:
    """Run everything; return the table (with its title lines) and how many targets failed."""
    started = time.monotonic()
    _log(f"micro: {config.micro_repeats} x {config.micro_samples} fresh tokens per case")
    micro = run_micro(config.micro_samples, config.micro_repeats)
    with (
        tempfile.TemporaryDirectory(prefix="ksa-bench-cluster-") as tmp,
        _devcluster(Path(tmp)) as cluster,
    ):
        pod = cluster.pod("be").name
        warm_count = max(1, config.fresh_requests // 10)
        count = max(config.fresh_requests + warm_count, config.memory_tokens)
        _log(f"minting {count + 1} tokens through the devcluster admin API")
        tokens = _mint(cluster, count + 1, pod)
        reused, distinct = tokens[0], tokens[1:]
        fresh = distinct[: config.fresh_requests]
        warm = distinct[config.fresh_requests : config.fresh_requests + warm_count]
        http = _http(config, cluster, reused, fresh, warm)
        winner = _winner(config, http)
        memory = _memory(config, cluster, winner, distinct[: config.memory_tokens])
    rows = _rows(config, micro, http, memory, winner)
    title = (
        f"ksa-auth bench{' (smoke: tiny counts, figures meaningless)' if config.smoke else ''}"
        f" -- {machine()}\n"
        f"micro: medians of {config.micro_repeats} runs x {config.micro_samples} tokens; "
        f"HTTP: one worker, {config.connections} connections, {config.rounds} rounds "
        f"({config.duration:.0f} s each, or {config.fresh_requests:,} fresh tokens), req/s the "
        f"median run, ratios the median of per-round ratios; {http.tool}; "
        f"took {time.monotonic() - started:.0f} s\n"
    )
    return render(rows, title), sum(1 for row in rows if row.ok is False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check the harness")
    parser.add_argument("--servers", default=",".join(serving.SERVERS))
    parser.add_argument("--duration", type=float, help="seconds per HTTP figure")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else Config()
    config = replace(config, servers=tuple(s for s in args.servers.split(",") if s))
    if args.duration is not None:
        config = replace(config, duration=args.duration)
    if args.rounds is not None:
        config = replace(config, rounds=args.rounds)
    table, failed = run(config)
    print(table, flush=True)
    if args.output is not None:
        args.output.write_text(table + "\n")
    # A smoke run only checks the harness: its tiny counts say nothing about the targets.
    return 0 if config.smoke or failed == 0 else 1
