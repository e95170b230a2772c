"""Pin the runtime closure of ksa-auth, as installed in the tested venv, in requirements.lock."""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "requirements.lock"
PROJECT = "ksa-auth"
# Shipped in the image beside the declared dependencies: `ksa-auth serve --server granian`.
EXTRA_ROOTS = ("granian",)

HEADER = """\
# Runtime dependencies of ksa-auth and everything they need (Linux, CPython 3.11), pinned to the
# versions the test suite ran against. Do not edit: regenerate from the tested venv with
#   .venv/bin/python deploy/lock_requirements.py
# deploy/Dockerfile installs exactly these (pip --no-deps, then pip check); `make` installs the
# venv under them as constraints, so tests and image run the same versions.
"""


class LockError(Exception):
    """The installed environment cannot produce a consistent lock (missing or mismatched dist)."""


def runtime_roots(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The [project].dependencies of pyproject.toml plus EXTRA_ROOTS, as parsed requirements."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = [Requirement(line) for line in project.get("dependencies", [])]
    names = {canonicalize_name(requirement.name) for requirement in declared}
    extra = [Requirement(name) for name in EXTRA_ROOTS if canonicalize_name(name) not in names]
    return declared + extra


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    # Markers are evaluated for this interpreter and platform (Linux, CPython 3.11 in the image),
    # once per requested extra, as pip does; "" stands for "no extra".
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(roots: Iterable[Requirement]) -> dict[str, str]:
    """Every distribution the roots need, transitively, mapped to its installed version.

    Raises LockError when one is not installed or its installed version does not satisfy a
    requirement on the way (the venv is not the environment the lock claims to describe).
    """
    pinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(requirement, "pyproject.toml") for requirement in roots if _applies(requirement, ())]
    while queue:
        requirement, wanted_by = queue.pop()
        name = canonicalize_name(requirement.name)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError as error:
            raise LockError(f"{name} (needed by {wanted_by}) is not installed") from error
        version = distribution.version
        if not requirement.specifier.contains(version, prereleases=True):
            raise LockError(f"{name}=={version} does not satisfy {requirement} ({wanted_by})")
        pinned[name] = version
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for line in distribution.requires or []:
            sub = Requirement(line)
            if _applies(sub, requirement.extras):
                queue.append((sub, f"{name}=={version}"))
    pinned.pop(canonicalize_name(PROJECT), None)
    return dict(sorted(pinned.items()))


def render(pins: dict[str, str]) -> str:
    """The lock file's text for these pins."""
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the lock file is not up to date"
    )
    args = parser.parse_args(argv)
    try:
        text = render(closure(runtime_roots()))
    except LockError as error:
        print(f"lock_requirements: {error}", file=sys.stderr)
        return 1
    if args.check:
        current = LOCK.read_text(encoding="utf-8") if LOCK.exists() else ""
        if current != text:
            print(f"{LOCK.relative_to(ROOT)} is out of date; regenerate it", file=sys.stderr)
            return 1
        return 0
    LOCK.write_text(text, encoding="utf-8")
    print(f"wrote {LOCK.relative_to(ROOT)}: {text.count('==')} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
