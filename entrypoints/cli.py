"""The `ksa-auth` command line: one subcommand per command, each handled in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from entrypoints.serve import DEFAULT_SERVER

# subcommand -> "module:function"; the function takes the parsed arguments and returns the exit
# code. Modules are imported only when their subcommand runs, so `ksa-auth decode` stays fast.
HANDLERS = {
    "serve": "entrypoints.serve:run",
    "devcluster": "devcluster.apiserver:run",
    "up": "devcluster.runner:run_up",
    "demo": "devcluster.runner:run_demo",
    "decode": "entrypoints.token_commands:run_decode",
    "verify": "entrypoints.token_commands:run_verify",
}
# The local cluster emulator's package: development tooling, installed with a checkout of the
# repository but left out of the image (deploy/Dockerfile copies domain, adapters, entrypoints).
DEVELOPMENT_PACKAGE = "devcluster"


# What each command reads from the environment (the README's settings table has them all).
_BE2_VARIABLES = (
    "KSA_TOKEN_FILE, KSA_CA_FILE, KSA_API_SERVER, KSA_ISSUER, KSA_DISCOVERY_URL, KSA_JWKS_URL, "
    "KSA_AUDIENCES, KSA_VERIFIER, KSA_JWKS_FILE, KSA_LEEWAY_SECONDS"
)
_SERVE_VARIABLES = (
    "be reads KSA_TOKEN_FILE, KSA_BE2_URL, KSA_BE2_CA_FILE, KSA_EXPOSE_TOKEN; "
    f"be2 reads {_BE2_VARIABLES}, KSA_ALLOWED_SUBJECTS; both read KSA_LOG_LEVEL, KSA_LOG_FORMAT, "
    "KSA_WORKERS, PROMETHEUS_MULTIPROC_DIR, and KSA_TLS_CERT_FILE with KSA_TLS_KEY_FILE (serve "
    "TLS when both are set)."
)
EXIT_CODES = "Exit codes: 0 ok, 1 rejected (a token or a step), 2 usage or settings."


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str, reads: str
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=text,
        description=text,
        epilog=f"{reads} {EXIT_CODES}",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def _devcluster_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = _command(
        commands, "devcluster", "run the local cluster emulator only", "Reads no KSA_* variable."
    )
    cluster.add_argument("--state-dir", required=True, help="where volumes, CA and cluster.json go")
    cluster.add_argument("--port", type=int, default=0, help="HTTPS port (0: a free port)")
    cluster.add_argument("--admin-port", type=int, default=0, help="admin port (0: a free port)")
    cluster.add_argument(
        "--token-ttl", type=int, default=3607, help="seconds a projected token lives (as kubelet)"
    )
    cluster.add_argument(
        "--pod",
        action="append",
        default=None,
        metavar="[NS/]APP:SA[:AUD,...]",
        help="run this pod instead of the default be and be2 (repeatable): default/be:be-sa:be2",
    )
    cluster.add_argument(
        "--rbac",
        action="append",
        default=None,
        metavar="PATH",
        help="RBAC objects to enforce besides kube's bootstrap policy (repeatable): a YAML file "
        "or a kustomization directory, e.g. deploy/k8s/overlays/hardened-tokenreview",
    )


def _serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = _command(
        commands, "serve", "run be or be2 with settings from the environment", _SERVE_VARIABLES
    )
    serve.add_argument("service", choices=["be", "be2"], help="which service")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--server", choices=["uvicorn", "granian"], default=DEFAULT_SERVER, help="ASGI server"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes, each verifying with its own keys (default: KSA_WORKERS, else 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ksa-auth",
        description="Kubernetes ServiceAccount JWT authentication between services.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _serve_command(commands)

    _devcluster_command(commands)

    for name, text in (
        ("up", "start devcluster, be and be2, run the flow, serve until Ctrl-C"),
        ("demo", "start devcluster, be and be2, run the flow once, exit 0 only if all passed"),
    ):
        stack = _command(commands, name, text, "Sets the services' KSA_* variables itself.")
        stack.add_argument("--state-dir", default=None, help="kept; default: a temporary directory")
        stack.add_argument("--token-ttl", type=int, default=3607, help="seconds a token lives")

    decode = _command(
        commands,
        "decode",
        "print header and claims, UNVERIFIED, with the SA identity and times",
        "Reads no KSA_* variable.",
    )
    decode.add_argument("token", nargs="?", default="-", help="the token, or - for stdin")
    verify = _command(
        commands,
        "verify",
        "verify with the be2 settings: exit 0 + identity JSON, or 1 + reason",
        f"Reads {_BE2_VARIABLES}.",
    )
    verify.add_argument("token", nargs="?", default="-", help="the token, or - for stdin")
    return parser


def _version() -> str:
    try:
        return metadata.version("ksa-auth")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _handler(command: str) -> Callable[[argparse.Namespace], int] | None:
    """The subcommand's function, or None (and one line on stderr) when its package is absent."""
    module_name, function_name = HANDLERS[command].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the emulator's package itself missing; any other missing module is a real fault.
        if not module_name.startswith(f"{DEVELOPMENT_PACKAGE}.") or exc.name not in (
            DEVELOPMENT_PACKAGE,
            module_name,
        ):
            raise
        print(
            f"ksa-auth {command}: the local cluster emulator is a development tool and is not in "
            "this installation (the image leaves it out); run it from a clone of the repository "
            "(make run)",
            file=sys.stderr,
        )
        return None
    handler: Callable[[argparse.Namespace], int] = getattr(module, function_name)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _handler(args.command)
    if handler is None:
        return 2
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
