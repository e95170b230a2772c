"""deploy/requirements.lock pins every runtime dependency and its closure, and nothing else."""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Callable
from importlib import metadata
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.manifests import ROOT

LOCK = ROOT / "deploy" / "requirements.lock"
TEST_TOOLS = {"pytest", "hypothesis", "import-linter", "ruff", "mypy", "kubernetes-validate"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lock_requirements", ROOT / "deploy" / "lock_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_lock(text: str) -> tuple[dict[str, str], list[str]]:
    """name -> pinned version, and the lines that are not an exact `name==version` pin."""
    pins: dict[str, str] = {}
    bad: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.marker:
            bad.append(line)
            continue
        pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins, bad


def _unmet(
    pins: dict[str, str], requirements: list[Requirement], what: str, whose: str
) -> list[str]:
    """Each requirement that the lock does not pin, or pins outside its range."""
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{what} {requirement} is not pinned")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{name}=={pins[name]} does not satisfy {whose} {requirement}")
    return problems


def declared_dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["dependencies"]]


def lock_problems(text: str, declared: list[Requirement]) -> list[str]:
    """Unpinned declared dependencies, open ends of the closure, and non-exact lines."""
    pins, bad = parse_lock(text)
    problems = [f"not an exact pin: {line}" for line in bad]
    problems += _unmet(pins, declared, "pyproject dependency", "pyproject's")
    for name, version in pins.items():
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is pinned but not installed in the tested venv")
            continue
        if installed.version != version:
            problems.append(f"{name}=={version} is pinned but {installed.version} was tested")
            continue
        for line in installed.requires or []:
            needed = Requirement(line)
            # Markers for this platform with no extra requested: what pip installs on Linux.
            if needed.marker is not None and not needed.marker.evaluate({"extra": ""}):
                continue
            other = canonicalize_name(needed.name)
            if other not in pins:
                problems.append(f"{name} needs {needed}, which is not pinned")
            elif not needed.specifier.contains(pins[other], prereleases=True):
                problems.append(f"{name} needs {needed}, but {other}=={pins[other]} is pinned")
    problems += [f"test tool {name} is in the runtime lock" for name in TEST_TOOLS & set(pins)]
    return problems


def test_every_runtime_dependency_is_pinned_with_its_closure() -> None:
    assert lock_problems(LOCK.read_text(encoding="utf-8"), declared_dependencies()) == []


def test_lock_is_what_the_generator_writes_from_this_venv() -> None:
    generator = load_generator()
    expected = generator.render(generator.closure(generator.runtime_roots()))
    assert LOCK.read_text(encoding="utf-8") == expected, (
        "deploy/requirements.lock is stale: run .venv/bin/python deploy/lock_requirements.py"
    )


def test_lock_ships_both_servers() -> None:
    pins, _ = parse_lock(LOCK.read_text(encoding="utf-8"))
    assert {"uvicorn", "granian", "litestar", "joserfc", "httpx", "cryptography"} <= set(pins)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda t: t.replace("httpcore==", "# httpcore=="), "needs httpcore", id="hole"
        ),
        pytest.param(lambda t: t.replace("litestar==", "# litestar=="), "litestar", id="declared"),
        pytest.param(lambda t: t.replace("anyio==", "anyio>="), "not an exact pin", id="range"),
        pytest.param(lambda t: t + "pytest==1.0\n", "test tool pytest", id="test-tool"),
        pytest.param(lambda t: t.replace("h11==", "h11==0.1.0\n# "), "was tested", id="drift"),
    ],
)
def test_lock_mistake_is_reported(mutate: Callable[[str], str], expected: str) -> None:
    original = LOCK.read_text(encoding="utf-8")
    changed = mutate(original)
    assert changed != original
    problems = lock_problems(changed, declared_dependencies())
    assert any(expected in problem for problem in problems), problems


def test_generator_refuses_a_dependency_that_is_not_installed() -> None:
    generator = load_generator()
    with pytest.raises(generator.LockError, match="not installed"):
        generator.closure([Requirement("surely-not-installed-ksa-auth-dependency")])


BUILD_LOCK = ROOT / "deploy" / "build-requirements.lock"


def build_system() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(line) for line in pyproject["build-system"]["requires"]]


def build_lock_problems(text: str, requires: list[Requirement]) -> list[str]:
    """The image's build backend pins: exact, one per [build-system] requirement, within it."""
    pins, bad = parse_lock(text)
    problems = [f"not an exact pin: {line}" for line in bad]
    problems += _unmet(pins, requires, "build requirement", "[build-system]")
    wanted = {canonicalize_name(r.name) for r in requires}
    problems += [f"{name} is pinned but not a build requirement" for name in set(pins) - wanted]
    return problems


def test_build_backend_is_pinned_within_the_build_system() -> None:
    assert build_lock_problems(BUILD_LOCK.read_text(encoding="utf-8"), build_system()) == []


def test_setuptools_floor_reads_the_spdx_license() -> None:
    # An SPDX expression in project.license (PEP 639) is refused by setuptools before 77 ("must
    # be valid exactly by one definition"); the floor must exclude those versions.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert isinstance(project["license"], str)
    (setuptools,) = [r for r in build_system() if canonicalize_name(r.name) == "setuptools"]
    for too_old in ("68.0.0", "76.1.0"):
        assert not setuptools.specifier.contains(too_old), setuptools
    assert setuptools.specifier.contains("77.0.3"), setuptools


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda t: t.replace("setuptools==", "setuptools>="), "exact", id="range"),
        pytest.param(
            lambda t: t.replace("setuptools==", "# setuptools=="), "not pinned", id="gone"
        ),
        pytest.param(
            lambda t: t.replace("setuptools==", "setuptools==76.1.0\n# "), "satisfy", id="old"
        ),
        pytest.param(lambda t: t + "wheel==0.45.1\n", "not a build requirement", id="extra"),
    ],
)
def test_build_lock_mistake_is_reported(mutate: Callable[[str], str], expected: str) -> None:
    original = BUILD_LOCK.read_text(encoding="utf-8")
    changed = mutate(original)
    assert changed != original
    problems = build_lock_problems(changed, build_system())
    assert any(expected in problem for problem in problems), problems
