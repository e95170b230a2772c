"""One table of figures, each with its ratios to the floor, the hello-world and the seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Row", "render"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; a ratio or a target that does not apply is None."""

    label: str
    value: str
    to_floor: float | None = None
    to_hello: float | None = None
    to_seed: float | None = None
    target: str = ""
    ok: bool | None = None


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


def render(rows: Sequence[Row], title: str = "") -> str:
    """The rows as a Markdown table (readable in a terminal and in docs/PERFORMANCE.md)."""
    header = ("figure", "value", "vs floor", "vs hello", "vs seed", "target", "result")
    cells = [
        (
            row.label,
            row.value,
            _ratio(row.to_floor),
            _ratio(row.to_hello),
            _ratio(row.to_seed),
            row.target,
            _verdict(row.ok),
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    right = {1, 2, 3, 4}

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    out = [title] if title else []
    out += [line(header), rule, *(line(c) for c in cells)]
    failed = [row.label for row in rows if row.ok is False]
    judged = sum(1 for row in rows if row.ok is not None)
    out.append("")
    # Not "N passed, N failed": CI reads such a line as a test runner's summary.
    summary = f"targets met: {judged - len(failed)} of {judged}"
    if failed:
        summary += " -- missed: " + "; ".join(failed)
    out.append(summary)
    return "\n".join(out)
