"""`ksa-auth up` and `demo`: devcluster, be and be2 as child processes, wired by cluster.json."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import httpx
import msgspec

from entrypoints.flow import (
    FlowTargets,
    SeedFlow,
    StepResult,
    render_line,
    render_table,
    run_steps,
)
from entrypoints.processes import (
    Child,
    NotReady,
    free_port,
    shielded_from_signals,
    spawn,
    stop_all,
    wait_for,
    wait_http_ready,
)

__all__ = [
    "ClusterInfo",
    "PodInfo",
    "Stack",
    "be2_environment",
    "be_environment",
    "run_demo",
    "run_up",
    "start_stack",
]

READY_TIMEOUT_SECONDS = 30.0
HOST = "127.0.0.1"
BE_APP, BE2_APP = "be", "be2"
# Settings a user may pass through to the children; every other KSA_* variable of our own
# environment is dropped so the services are wired only by what the devcluster wrote.
PASSED_THROUGH = frozenset({"KSA_LOG_LEVEL", "KSA_LOG_FORMAT"})
# In a source checkout (make run) these exist; from an installed wheel they are shown relative.
REPO = Path(__file__).resolve().parents[1]
POSTMAN_COLLECTION = Path("deploy/postman/ksa-auth.postman_collection.json")
LOCAL_NEWMAN = Path("tools/newman/node_modules/.bin/newman")


class PodInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One pod of cluster.json (the fields the stack uses)."""

    namespace: str
    name: str
    service_account: str
    token_file: str
    ca_file: str

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def is_app(self, app: str) -> bool:
        # Deployment pods are named <app>-<suffix> (be-7d9f8); be2's must not match "be".
        return self.name == app or self.name.rsplit("-", 1)[0] == app


class ClusterInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The devcluster's cluster.json: the only source of wiring for be and be2."""

    url: str
    ca_file: str
    issuer: str
    api_audience: str
    discovery_url: str
    jwks_url: str
    admin_url: str
    admin_token: str = msgspec.field(default="")
    pid: int = 0
    pods: tuple[PodInfo, ...] = ()

    def pod(self, app: str) -> PodInfo:
        for pod in self.pods:
            if pod.is_app(app):
                return pod
        raise NotReady(f"cluster.json has no pod for {app!r}")

    def __repr__(self) -> str:  # the admin token is a secret
        return f"ClusterInfo(url={self.url!r}, pods={[p.name for p in self.pods]!r})"


def be_environment(cluster: ClusterInfo, be2_url: str) -> dict[str, str]:
    """be's settings (SPEC §3): its pod's projected token, and where be2 listens."""
    return {"KSA_TOKEN_FILE": cluster.pod(BE_APP).token_file, "KSA_BE2_URL": be2_url}


def be2_environment(cluster: ClusterInfo) -> dict[str, str]:
    """be2's settings (SPEC §3): its own pod's token and CA, the API server, who may call."""
    pod = cluster.pod(BE2_APP)
    return {
        "KSA_TOKEN_FILE": pod.token_file,
        "KSA_CA_FILE": pod.ca_file,
        "KSA_API_SERVER": cluster.url,
        "KSA_DISCOVERY_URL": cluster.discovery_url,
        "KSA_ISSUER": cluster.issuer,
        "KSA_AUDIENCES": cluster.api_audience,
        "KSA_ALLOWED_SUBJECTS": cluster.pod(BE_APP).subject,
    }


def child_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """Our environment minus any KSA_* of ours (but log settings), plus `settings`."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KSA_") or key in PASSED_THROUGH
    }
    return {**base, "PYTHONUNBUFFERED": "1", **settings}


def cli_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", *arguments]


@dataclass(frozen=True, slots=True)
class Stack:
    """A running devcluster + be + be2."""

    state_dir: Path
    cluster: ClusterInfo
    be_url: str
    be2_url: str
    children: tuple[Child, ...]
    started_seconds: float

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the devcluster's admin API; raises on a non-2xx answer."""
        response = httpx.post(
            f"{self.cluster.admin_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.cluster.admin_token}"},
            timeout=10.0,
            trust_env=False,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def flow_targets(self) -> FlowTargets:
        be, be2 = self.cluster.pod(BE_APP), self.cluster.pod(BE2_APP)
        return FlowTargets(
            be_url=self.be_url,
            be2_url=self.be2_url,
            be_namespace=be.namespace,
            be_service_account=be.service_account,
            be_pod=be.name,
            other_subject=be2.subject,
            other_token_file=Path(be2.token_file),
            issuer=self.cluster.issuer,
            admin=self.admin,
        )

    def describe(self, phase: str) -> dict[str, Any]:
        """What stack.json records: phase, URLs, child pids and log files (no secrets)."""
        return {
            "phase": phase,
            "devcluster_url": self.cluster.url,
            "be_url": self.be_url,
            "be2_url": self.be2_url,
            "pids": {child.name: child.pid for child in self.children},
            "logs": {child.name: str(child.log_path) for child in self.children},
        }


def _read_cluster(path: Path, pid: int) -> ClusterInfo | None:
    try:
        cluster = msgspec.json.decode(path.read_bytes(), type=ClusterInfo)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    # A cluster.json left by an earlier run in the same state dir names another process.
    return cluster if cluster.pid == pid else None


@contextlib.contextmanager
def start_stack(
    state_dir: Path,
    token_ttl: int = 3607,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[Stack]:
    """Start devcluster, then be2 and be (in parallel), wait until all are ready, yield.

    Every child is stopped (and reaped) when the block ends, however it ends.
    """
    started = time.perf_counter()
    state_dir.mkdir(parents=True, exist_ok=True)
    logs = state_dir / "logs"
    cluster_json = state_dir / "cluster.json"
    for stale in (cluster_json, state_dir / "stack.json"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    children: list[Child] = []
    try:
        with httpx.Client(trust_env=False) as client:
            devcluster = spawn(
                "devcluster",
                cli_command(
                    "devcluster", "--state-dir", str(state_dir), "--token-ttl", str(token_ttl)
                ),
                child_environment({}),
                logs / "devcluster.log",
            )
            children.append(devcluster)
            found: list[ClusterInfo] = []

            def cluster_written() -> bool:
                cluster = _read_cluster(cluster_json, devcluster.pid)
                if cluster is not None:
                    found.append(cluster)
                return cluster is not None

            wait_for(cluster_written, ready_timeout, "devcluster cluster.json", (devcluster,))
            cluster = found[0]
            be_port, be2_port = free_port(HOST), free_port(HOST)
            be_url, be2_url = f"http://{HOST}:{be_port}", f"http://{HOST}:{be2_port}"
            for app, port, settings in (
                (BE2_APP, be2_port, be2_environment(cluster)),
                (BE_APP, be_port, be_environment(cluster, be2_url)),
            ):
                children.append(
                    spawn(
                        app,
                        cli_command("serve", app, "--host", HOST, "--port", str(port)),
                        child_environment(settings),
                        logs / f"{app}.log",
                    )
                )
            for child, url in ((children[1], be2_url), (children[2], be_url)):
                wait_http_ready(f"{url}/readyz", child, client, ready_timeout)
        yield Stack(
            state_dir=state_dir,
            cluster=cluster,
            be_url=be_url,
            be2_url=be2_url,
            children=tuple(children),
            started_seconds=time.perf_counter() - started,
        )
    finally:
        with shielded_from_signals():
            stop_all(children)


# -- the two commands ---------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM both unwind as KeyboardInterrupt, so `finally` stops the children.

    Set explicitly: a shell starting us in the background may have left SIGINT ignored.
    """
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _state_directory(given: str | None, keep: list[bool]) -> Iterator[Path]:
    """The given state dir, or a temporary one removed at exit (kept if `keep[0]` is set)."""
    if given is not None:
        yield Path(given).resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="ksa-auth-"))
    try:
        yield path
    finally:
        if not keep[0]:
            shutil.rmtree(path, ignore_errors=True)


def _run_flow(stack: Stack, out: TextIO) -> list[StepResult]:
    first = StepResult(
        1,
        "services started",
        True,
        f"devcluster, be2, be ready (logs in {stack.log_dir})",
        stack.started_seconds * 1e3,
    )
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        steps = SeedFlow(stack.flow_targets(), client).steps()
        total = 1 + len(steps)
        print(render_line(first, total), file=out, flush=True)
        return [first, *run_steps(steps, out, first_number=2, total=total)]


def _start_failed(error: Exception, total: int, started: float, out: TextIO) -> StepResult:
    result = StepResult(
        1,
        "services started",
        False,
        str(error).splitlines()[0],
        (time.perf_counter() - started) * 1e3,
    )
    print(render_line(result, total), file=out, flush=True)
    details = str(error).splitlines()[1:]
    if details:
        print("\n".join(details), file=out, flush=True)
    return result


def _step_count() -> int:
    return 1 + len(SeedFlow.STEPS)


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the flow once; exit 0 only if every step passed. Children are always stopped."""
    keep = [False]
    started = time.perf_counter()
    with _signals_interrupt(), _state_directory(args.state_dir, keep) as state_dir:
        print(f"ksa-auth demo: state and logs in {state_dir}", file=out, flush=True)
        try:
            with start_stack(state_dir, args.token_ttl) as stack:
                _write_json(state_dir / "stack.json", stack.describe("flow"))
                results = _run_flow(stack, out)
        except (NotReady, OSError) as error:
            results = [_start_failed(error, _step_count(), started, out)]
        print("", file=out)
        print(render_table(results), file=out, flush=True)
        passed = all(r.passed for r in results) and len(results) == _step_count()
        if not passed and args.state_dir is None:
            keep[0] = True
            print(f"logs kept in {state_dir / 'logs'}", file=out, flush=True)
        return 0 if passed else 1


def run_up(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the flow, print URLs and curl commands, serve until SIGINT/SIGTERM or a child dies.

    Exit code: 0 when every step passed and we were stopped by a signal; 1 when a step failed
    or a child died; 130 when interrupted before the flow finished.
    """
    keep = [False]
    started = time.perf_counter()
    results: list[StepResult] = []
    with _signals_interrupt(), _state_directory(args.state_dir, keep) as state_dir:
        print(f"ksa-auth up: state and logs in {state_dir}", file=out, flush=True)
        stack_file = state_dir / "stack.json"
        try:
            with start_stack(state_dir, args.token_ttl) as stack:
                _write_json(stack_file, stack.describe("flow"))
                results = _run_flow(stack, out)
                print("", file=out)
                print(render_table(results), file=out)
                print("", file=out)
                print(usage_text(stack), file=out, flush=True)
                _write_json(stack_file, stack.describe("serving"))
                _serve_until_stopped(stack, out)
                return 1
        except KeyboardInterrupt:
            print("stopped: every child process has exited", file=out, flush=True)
            if not results:
                return 130
            return 0 if all(r.passed for r in results) else 1
        except (NotReady, OSError) as error:
            _start_failed(error, _step_count(), started, out)
            return 1


def _serve_until_stopped(stack: Stack, out: TextIO) -> None:
    """Block until a signal (KeyboardInterrupt propagates) or a child ends (returns)."""
    while True:
        for child in stack.children:
            code = child.process.poll()
            if code is not None:
                print(
                    f"{child.name} exited with code {code}; see {child.log_path}. Stopping.",
                    file=out,
                    flush=True,
                )
                return
        # A watchdog tick, not a synchronisation: signals interrupt it at once.
        time.sleep(0.5)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)


def usage_text(stack: Stack) -> str:
    """URLs and ready-to-paste commands. A token appears only as `$(curl ...)` substitution."""
    be, be2, cluster = stack.be_url, stack.be2_url, stack.cluster
    cluster_json = shlex.quote(str(stack.state_dir / "cluster.json"))
    if shutil.which("jq") is not None:
        extract, admin_token = "jq -r .token", f"$(jq -r .admin_token {cluster_json})"
    else:
        extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])'"
        admin_token = (
            f"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"admin_token\"])'"
            f" {cluster_json})"
        )
    bearer = f'-H "Authorization: Bearer $(curl -s {be}/get-jwt | {extract})"'
    logs = ", ".join(str(child.log_path) for child in stack.children)
    lines = [
        "Serving (Ctrl-C stops every process):",
        f"  devcluster  {cluster.url}  (CA {cluster.ca_file}, admin {cluster.admin_url})",
        f"  be          {be}",
        f"  be2         {be2}  (OpenAPI: {be2}/schema/swagger)",
        f"  logs        {logs}",
        "",
        "Try (paste into a shell):",
        "  # seed step 2: be's token (JSON: token, subject, audiences, expires_at)",
        f"  curl -s {be}/get-jwt",
        "  # seed steps 3-6: send it to be2 as a Bearer token, see the verified identity",
        f"  curl -s {bearer} {be2}/validate-auth",
        "  # be calls be2 with its own token",
        f"  curl -s {be}/call-be2",
        "  # authorization by service account: be-sa may use /protected",
        f"  curl -s {bearer} {be2}/protected",
        "  # no token: 401 missing_token with a WWW-Authenticate challenge",
        f"  curl -si {be2}/validate-auth",
        "  # the token's header and claims (UNVERIFIED), with time left",
        f"  curl -s {be}/get-jwt | {extract} | {shlex.quote(_ksa_auth_command())} decode -",
        "  # the cluster's JWKS, over the devcluster CA, with be's token (RBAC wants one)",
        f"  curl -s --cacert {shlex.quote(cluster.ca_file)} {bearer} {cluster.jwks_url}",
        "  # rotate every projected token now, as the kubelet would",
        f'  curl -s -X POST -H "Authorization: Bearer {admin_token}" '
        f"{cluster.admin_url}/admin/tokens/rotate",
        "  # the seed's Postman flow, with newman",
        f"  {_newman_command()} run {_in_repo(POSTMAN_COLLECTION)} "
        f"--env-var be_url={be} --env-var be2_url={be2}",
    ]
    return "\n".join(lines)


def _in_repo(path: Path) -> str:
    return shlex.quote(str(REPO / path if (REPO / path).exists() else path))


def _newman_command() -> str:
    # `make test` installs newman under tools/newman; otherwise npx fetches the same version.
    if (REPO / LOCAL_NEWMAN).exists():
        return _in_repo(LOCAL_NEWMAN)
    return "npx --yes newman@6.2.2"


def _ksa_auth_command() -> str:
    beside = Path(sys.executable).parent / "ksa-auth"
    return str(beside) if beside.exists() else "ksa-auth"
