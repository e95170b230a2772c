"""The domain stays pure: only the standard library and msgspec, checked on the source itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"msgspec"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_imports_only_stdlib_msgspec_and_itself() -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {root}"
        for path in sorted((ROOT / "domain").rglob("*.py"))
        for root in _imported_roots(path)
        if root not in sys.stdlib_module_names and root not in ALLOWED_THIRD_PARTY | {"domain"}
    }
    assert not offending, f"domain/ must import only stdlib and msgspec: {sorted(offending)}"
