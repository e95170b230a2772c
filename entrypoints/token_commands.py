"""`ksa-auth decode` (an UNVERIFIED look inside a token) and `ksa-auth verify` (be2 settings)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from domain.claims import JWT_MAX_BYTES, Claims, decode_claims
from domain.errors import AuthError, Malformed
from domain.jws import parse_compact, peek
from domain.rules import split_subject
from entrypoints.settings import SettingsError, check_service_files, load_settings

__all__ = ["read_token", "render_decode", "run_decode", "run_verify"]

# The argument that means "read the token from standard input".
STDIN = "-"


def read_token(argument: str, stdin: TextIO) -> str:
    """The token from the argument, or stdin for `-`; a pasted `Bearer ` prefix is dropped."""
    text = stdin.read(JWT_MAX_BYTES * 2) if argument == "-" else argument
    text = text.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    return text


def _utc(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (out of range)"


def _duration(seconds: float) -> str:
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _relative(moment: float, now: float) -> str:
    delta = moment - now
    return f"in {_duration(delta)}" if delta >= 0 else f"{_duration(delta)} ago"


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def render_decode(token: str, now: float) -> str:
    """The `decode` report: header, claims, SA identity and times, all marked UNVERIFIED.

    Raises:
        Malformed: the token cannot be read at all.
    """
    if not token:
        raise Malformed("no token given")
    raw = peek(token)
    lines = [
        "UNVERIFIED: nothing below is trusted; the signature was not checked "
        "(`ksa-auth verify` checks it).",
        "",
        "Header (UNVERIFIED):",
        _json(raw.header),
        f"Signature: {len(raw.signature)} bytes (not shown, not verified)",
        "",
        "Claims (UNVERIFIED):",
        _json(raw.claims),
        "",
    ]
    try:
        claims = decode_claims(parse_compact(token).payload)
    except Malformed as exc:
        lines.append(f"Not a Kubernetes service account token: {exc.detail}")
        return "\n".join(lines) + "\n"
    lines.extend(_identity_lines(claims))
    lines.append("")
    lines.extend(_time_lines(claims, now))
    return "\n".join(lines) + "\n"


def _identity_lines(claims: Claims) -> list[str]:
    lines = ["Service account (UNVERIFIED):"]
    parsed = split_subject(claims.sub)
    rows: list[tuple[str, str]] = [("subject", claims.sub or "(none)")]
    if claims.kubernetes is not None:
        private = claims.kubernetes
        account = private.serviceaccount
        rows.append(("namespace", private.namespace))
        rows.append(("service account", _with_uid(account.name, account.uid)))
        if private.pod is not None:
            rows.append(("pod", _with_uid(private.pod.name, private.pod.uid)))
        if private.secret is not None:
            rows.append(("secret", _with_uid(private.secret.name, private.secret.uid)))
        if private.node is not None:
            rows.append(("node", _with_uid(private.node.name, private.node.uid)))
        if parsed is not None and parsed != (private.namespace, account.name):
            rows.append(("warning", "sub does not match the kubernetes.io claim"))
    elif claims.is_legacy:
        rows.append(("kind", "legacy secret-based token (no expiry, no audience)"))
        rows.append(("namespace", claims.legacy_namespace or ""))
        rows.append(("service account", claims.legacy_service_account_name or ""))
    else:
        rows.append(("warning", "no kubernetes.io claim: not a service account token"))
    rows.append(("issuer", claims.iss))
    rows.append(("audiences", ", ".join(claims.audiences) or "(none)"))
    if claims.jti:
        rows.append(("jti", claims.jti))
    lines.extend(f"  {name:<16} {value}" for name, value in rows)
    return lines


def _with_uid(name: str, uid: str) -> str:
    return f"{name} (uid {uid})" if uid else name


def _time_lines(claims: Claims, now: float) -> list[str]:
    lines = [f"Times (UTC; now {_utc(now)}):"]
    for name, value in (("iat", claims.iat), ("nbf", claims.nbf)):
        if value is not None:
            lines.append(f"  {name:<10} {_utc(value)}  ({_relative(value, now)})")
    warnafter = claims.kubernetes.warnafter if claims.kubernetes else None
    if warnafter is not None:
        # kubernetes claims.go: past warnafter the token still works but is "stale": the
        # kubelet should have replaced it (it rotates at 80% of the requested lifetime).
        state = "stale" if now > warnafter else "fresh"
        lines.append(
            f"  {'warnafter':<10} {_utc(warnafter)}  ({_relative(warnafter, now)}): {state}"
        )
    if claims.exp is None:
        lines.append(f"  {'exp':<10} none (never expires)")
    elif now > claims.exp:
        lines.append(
            f"  {'exp':<10} {_utc(claims.exp)}  (expired {_duration(now - claims.exp)} ago)"
        )
    else:
        lines.append(f"  {'exp':<10} {_utc(claims.exp)}  ({_duration(claims.exp - now)} left)")
    if claims.iat is not None and claims.exp is not None:
        lines.append(f"  {'lifetime':<10} {_duration(claims.exp - claims.iat)}")
    return lines


def run_decode(args: argparse.Namespace) -> int:
    """`ksa-auth decode [TOKEN|-]`: 0 and the report, or 1 and one line saying why not."""
    if args.token == STDIN and sys.stdin.isatty():
        # Nothing piped in: say how to use it rather than wait for input in silence.
        print(
            "ksa-auth decode: give a token, or pipe one in: ksa-auth decode - < token",
            file=sys.stderr,
        )
        return 2
    token = read_token(args.token, sys.stdin)
    try:
        sys.stdout.write(render_decode(token, time.time()))
    except Malformed as exc:
        print(f"{exc.reason}: {exc.detail}", file=sys.stderr)
        return 1
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """`ksa-auth verify [TOKEN|-]` with be2's settings: 0 + identity JSON, or 1 + reason code."""
    from entrypoints.be2 import Authenticated
    from entrypoints.container import build_container, close_all

    token = read_token(args.token, sys.stdin)
    try:
        settings = load_settings(os.environ)
        check_service_files(settings, "be2")
        container = build_container(settings)
        verifier = container.verifier()
    except SettingsError as exc:
        print(f"ksa-auth verify: {exc}", file=sys.stderr)
        return 2

    async def verify() -> Any:
        try:
            return await verifier.verify(token)
        finally:
            await close_all(container.closers())

    try:
        identity = asyncio.run(verify())
    except AuthError as exc:
        print(f"{exc.reason}: {exc.detail}", file=sys.stderr)
        return 1
    print(msgspec.json.encode(Authenticated.of(identity)).decode())
    return 0
