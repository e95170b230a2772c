"""`ksa-auth up` and `ksa-auth demo`: start the stack, run the seed flow, report, serve or exit."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from devcluster.flow import (
    FlowTargets,
    SeedFlow,
    StepResult,
    render_step,
    render_summary,
    run_steps,
)
from devcluster.kubeconfig import service_account_context
from devcluster.processes import NotReady
from devcluster.stack import Stack, start_stack

__all__ = ["kubectl_lines", "run_demo", "run_up", "usage_text"]

# In a source checkout (make run) these exist; from an installed wheel they are shown relative.
REPO = Path(__file__).resolve().parents[1]
POSTMAN_COLLECTION = Path("deploy/postman/ksa-auth.postman_collection.json")
LOCAL_NEWMAN = Path("tools/newman/node_modules/.bin/newman")


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
        f"devcluster, {'be2 (TLS)' if stack.be2_ca_file else 'be2'} and be answer /readyz",
        stack.started_seconds * 1e3,
    )
    targets = FlowTargets(stack.be_url, stack.be2_url, stack.cluster, stack.admin)
    with stack.client() as client:
        steps = SeedFlow(targets, client).steps()
        total = 1 + len(steps)
        print(render_step(first, total), file=out, flush=True)
        return [first, *run_steps(steps, out, first_number=2, total=total)]


def _start_failed(error: Exception, total: int, started: float, out: TextIO) -> StepResult:
    result = StepResult(
        1,
        "services started",
        False,
        str(error).splitlines()[0],
        (time.perf_counter() - started) * 1e3,
    )
    print(render_step(result, total), file=out, flush=True)
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
        summary = render_summary(results, _step_count(), time.perf_counter() - started)
        print(summary, file=out, flush=True)
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
                summary = render_summary(results, _step_count(), time.perf_counter() - started)
                print(summary, file=out)
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
            failed = _start_failed(error, _step_count(), started, out)
            summary = render_summary([failed], _step_count(), time.perf_counter() - started)
            print(summary, file=out, flush=True)
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
    # be2 over TLS: curl and newman trust the CA that signed its certificate, that one only.
    be2_ca = stack.be2_ca_file
    pin = f"--cacert {shlex.quote(be2_ca)} " if be2_ca else ""
    newman_ca = f" --ssl-extra-ca-certs {shlex.quote(be2_ca)}" if be2_ca else ""
    logs = ", ".join(str(child.log_path) for child in stack.children)
    lines = [
        "Serving (Ctrl-C stops every process):",
        f"  devcluster  {cluster.url}  (CA {cluster.ca_file}, admin {cluster.admin_url})",
        f"  be          {be}",
        f"  be2         {be2}  (OpenAPI: {be2}/schema/swagger)"
        + (f"\n              TLS: certificate from the devcluster CA {be2_ca}" if be2_ca else ""),
        f"  logs        {logs}",
        "",
        "Try (paste into a shell):",
        "  # seed step 2: be's token (JSON: token, subject, audiences, expires_at)",
        f"  curl -s {be}/get-jwt",
        "  # seed steps 3-6: send it to be2 as a Bearer token, see the verified identity",
        f"  curl -s {pin}{bearer} {be2}/validate-auth",
        "  # be calls be2 with its own token",
        f"  curl -s {be}/call-be2",
        "  # authorization by service account: be-sa may use /protected",
        f"  curl -s {pin}{bearer} {be2}/protected",
        "  # no token: 401 missing_token with a WWW-Authenticate challenge",
        f"  curl -si {pin}{be2}/validate-auth",
        "  # the token's header and claims (UNVERIFIED), with time left",
        f"  curl -s {be}/get-jwt | {extract} | {shlex.quote(_ksa_auth_command())} decode -",
        "  # the cluster's JWKS, over the devcluster CA, with be's token (RBAC wants one)",
        f"  curl -s --cacert {shlex.quote(cluster.ca_file)} {bearer} {cluster.jwks_url}",
        "  # rotate every projected token now, as the kubelet would",
        f'  curl -s -X POST -H "Authorization: Bearer {admin_token}" '
        f"{cluster.admin_url}/admin/tokens/rotate",
        "  # the seed's Postman flow, with newman",
        f"  {_newman_command()} run {_in_repo(POSTMAN_COLLECTION)} "
        f"--env-var be_url={be} --env-var be2_url={be2}{newman_ca}",
        *kubectl_lines(cluster.kubeconfig),
    ]
    return "\n".join(lines)


def kubectl_lines(kubeconfig: str) -> list[str]:
    """The same flow with kubectl: the emulator's kubeconfig is the cluster admin by default."""
    if not kubeconfig:
        return []
    body = '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"%s"}}'
    review = f"printf '{body}' \"$(kubectl create token be-sa)\""
    be_sa = service_account_context("default", "be-sa")
    be2_sa = service_account_context("default", "be2-sa")
    return [
        "",
        "With kubectl (contexts: the cluster admin, and one per service account):",
        f"  export KUBECONFIG={shlex.quote(kubeconfig)}",
        "  kubectl version; kubectl api-resources; kubectl config get-contexts",
        "  # a token for be-sa that be2 accepts (audience be2, 10 minutes): TokenRequest",
        "  kubectl create token be-sa --audience be2 --duration 10m",
        "  # who the API server says a token is: TokenReview",
        f"  {review} | kubectl create -o yaml -f -",
        "  # be-sa may not review tokens: Error from server (Forbidden)",
        f"  {review} | kubectl --context {be_sa} create -f -",
        "  # the JWKS, read as be2-sa (as be2 fetches it)",
        f"  kubectl --context {be2_sa} get --raw /openid/v1/jwks",
    ]


def _in_repo(path: Path) -> str:
    return shlex.quote(str(REPO / path if (REPO / path).exists() else path))


def _newman_command() -> str:
    # The project's pinned newman (tools/newman's lock file), installed by `make newman` if it is
    # not there yet: never a download of whatever version npx finds.
    if (REPO / LOCAL_NEWMAN).exists():
        return _in_repo(LOCAL_NEWMAN)
    # The path in the checkout, so the command works from any directory once make is done.
    installed = shlex.quote(str(REPO / LOCAL_NEWMAN))
    return f"make -C {shlex.quote(str(REPO))} newman && {installed}"


def _ksa_auth_command() -> str:
    beside = Path(sys.executable).parent / "ksa-auth"
    return str(beside) if beside.exists() else "ksa-auth"
