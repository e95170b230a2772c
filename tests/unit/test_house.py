"""The shape of the shipped code: short functions, small classes, one purpose per folder."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Everything a user runs or reads to learn the project; tests and the bench are not shipped.
SHIPPED = ("domain", "adapters", "entrypoints", "devcluster")
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300
MAX_ENTRYPOINTS_SHARE = 0.45


def _shipped_files() -> list[Path]:
    files = [path for folder in SHIPPED for path in sorted((ROOT / folder).rglob("*.py"))]
    assert files, "no shipped Python files found"
    return files


def _definitions(path: Path) -> Iterator[tuple[str, int, ast.AST]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # From the `def`/`class` line to the last line; decorators are not counted.
            assert node.end_lineno is not None
            yield node.name, node.end_lineno - node.lineno + 1, node


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shipped_function_is_over_60_lines(path: Path) -> None:
    long = [
        f"{name} ({lines} lines)"
        for name, lines, node in _definitions(path)
        if not isinstance(node, ast.ClassDef) and lines > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(ROOT)}: split {', '.join(long)}"


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shipped_class_is_over_300_lines(path: Path) -> None:
    large = [
        f"{name} ({lines} lines)"
        for name, lines, node in _definitions(path)
        if isinstance(node, ast.ClassDef) and lines > MAX_CLASS_LINES
    ]
    assert not large, f"{path.relative_to(ROOT)}: split {', '.join(large)}"


def test_the_rules_catch_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"@decorator\ndef long() -> None:\n{body}\n")
    [(name, lines, _)] = list(_definitions(path))
    assert (name, lines) == ("long", MAX_FUNCTION_LINES + 1)


def _lines(folder: str) -> int:
    # Physical lines, as `wc -l` counts them.
    return sum(path.read_bytes().count(b"\n") for path in (ROOT / folder).rglob("*.py"))


def test_entrypoints_stay_lean() -> None:
    # The driving side (apps, composition root, CLI, observability wiring) is the thin part:
    # rules belong in domain/, implementations of the ports in adapters/.
    counts = {folder: _lines(folder) for folder in ("domain", "adapters", "entrypoints")}
    total = sum(counts.values())
    share = counts["entrypoints"] / total
    figures = ", ".join(f"{folder} {lines}" for folder, lines in counts.items())
    assert share <= MAX_ENTRYPOINTS_SHARE, (
        f"entrypoints/ is {share:.1%} of the shipped lines ({figures}); at most "
        f"{MAX_ENTRYPOINTS_SHARE:.0%}: move what is not the driving side to domain/ or adapters/"
    )


@pytest.mark.parametrize("folder", SHIPPED)
def test_every_package_says_what_it_is_for(folder: str) -> None:
    init = ROOT / folder / "__init__.py"
    if folder == "devcluster" and not init.exists():
        pytest.skip("devcluster/ is not in this checkout")
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert docstring, f"{folder}/__init__.py has no docstring"
    assert len(docstring.splitlines()) == 1, f"{folder}/__init__.py: one line, please"


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_one_line_docstring(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring, f"{path.relative_to(ROOT)} has no module docstring"
    assert len(docstring.splitlines()) == 1


# A reader has only the repository: the contract's sections and the tracker's numbers are not
# in it (commit messages may cite issues).
_OUTSIDE_REFERENCE = re.compile(r"SPEC\s*§|\bissues? #?\d+|(?:^|[\s(])#\d+\b")


def _texts() -> list[Path]:
    texts = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").glob("*.md"))]
    texts += [path for path in sorted((ROOT / "deploy").rglob("*")) if path.is_file()]
    return [*_shipped_files(), *texts]


@pytest.mark.parametrize("path", _texts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_text_points_nowhere_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    found = [
        f"line {number}: {match.group(0)!r}"
        for number, line in enumerate(text.splitlines(), 1)
        for match in _OUTSIDE_REFERENCE.finditer(line)
    ]
    assert not found, f"{path.relative_to(ROOT)}: {'; '.join(found)}"
