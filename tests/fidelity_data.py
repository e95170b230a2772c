"""kube-apiserver's own verdicts on 1,200 tokens (tests/data/fidelity), as test data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "fidelity"
ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Verdict:
    """What kube answered for one token with one audience setting."""

    token: str
    now: float
    mutations: tuple[str, ...]
    setting: str
    ok: bool
    user: str | None
    error: str
    handled: bool = True
    """False: kube's "not my token" (wrong issuer, unparsable JWS)."""


def kube_verdicts() -> list[Verdict]:
    """Every token of the file, once per audience setting."""
    verdicts = []
    for line in (DATA / "kube-verdicts.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for setting, kube in row["kube"].items():
            verdicts.append(
                Verdict(
                    row["token"],
                    row["now"],
                    tuple(row["mutations"]),
                    setting,
                    kube["ok"],
                    kube["user"],
                    kube["error"] or "",
                    kube["handled"],
                )
            )
    return verdicts
