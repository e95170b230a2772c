"""deploy/Dockerfile, read with BuildKit's parser: slim 3.11 base, locked install, numeric user."""

# The static checks: what the file must say. tests/image builds the image from it with buildah and
# runs it, which proves the rest.

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import dockerfile
import pytest

from tests.deploy.manifests import ROOT, Document, find

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
LOCK = "deploy/requirements.lock"
BUILD_LOCK = "deploy/build-requirements.lock"
PORT = 8080
# The project's own wheel, built in the same Dockerfile from the copied sources.
OWN_WHEEL = re.compile(r"(.*/)?ksa_auth-[^/]*\.whl")


def _stages(commands: tuple[dockerfile.Command, ...]) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in commands:
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def _base_image(from_command: dockerfile.Command, args: dict[str, str]) -> str:
    image = from_command.value[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda match: args.get(match.group(1), ""), image)


def _pip_commands(run: str, verb: str) -> list[list[str]]:
    """The argument lists of every `pip ... <verb>` (install, wheel) in a RUN line."""
    found = []
    for part in re.split(r"&&|;", run):
        words = shlex.split(part)
        if "pip" in words and verb in words:
            found.append(words[words.index(verb) + 1 :])
    return found


def _pip_installs(run: str) -> list[list[str]]:
    """The argument lists of every `pip ... install` in a RUN line."""
    return _pip_commands(run, "install")


def _build_problems(text: str, runs: list[str]) -> list[str]:
    """Parser directives and source builds: nothing may be fetched unpinned at build time."""
    problems = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        # BuildKit reads `# syntax=` and pulls that frontend image from a registry first.
        if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE):
            problems.append(f"{line!r} makes BuildKit pull a frontend at build time")
    builds = [w for run in runs for w in _pip_commands(run, "wheel")]
    builds += [w for run in runs for w in _pip_installs(run) if "." in w]
    for words in builds:
        if "--no-build-isolation" not in words:
            problems.append(
                f"pip builds {' '.join(words)} in build isolation, which fetches the newest "
                "build backend at build time"
            )
    installs = [w for run in runs for w in _pip_installs(run)]
    if builds and not any(BUILD_LOCK in words for words in installs):
        problems.append(f"the build backend is not installed from {BUILD_LOCK}")
    return problems


def image_problems(text: str) -> list[str]:
    """What is wrong with this Dockerfile for the image this project ships (empty: nothing)."""
    commands = dockerfile.parse_string(text)
    problems: list[str] = []
    args = {}
    for command in commands:
        if command.cmd == "FROM":
            break
        if command.cmd == "ARG" and "=" in command.value[0]:
            name, _, default = command.value[0].partition("=")
            args[name] = default
    stages = _stages(commands)
    if not stages:
        return ["no FROM"]
    for stage in stages:
        base = _base_image(stage[0], args)
        name, _, tag = base.partition("@")[0].rpartition(":")
        if not name:
            problems.append(f"base {base!r} has no tag (that is :latest)")
        elif tag == "latest":
            problems.append(f"base {base!r} uses the latest tag")
        elif name not in ("python", "docker.io/library/python") or not re.fullmatch(
            r"3\.11(\.\d+)?-slim(-\w+)?", tag
        ):
            problems.append(f"base {base!r} is not a slim Python 3.11 image")
    runs = [c.value[0] for c in commands if c.cmd == "RUN"]
    installs = [words for run in runs for words in _pip_installs(run)]
    if not any(LOCK in words for words in installs):
        problems.append(f"nothing is installed from {LOCK}")
    for words in installs:
        if "--no-deps" not in words:
            problems.append(f"pip install {' '.join(words)} resolves versions at build time")
        targets = [
            w
            for i, w in enumerate(words)
            if not w.startswith("-")
            and (i == 0 or words[i - 1] not in ("--requirement", "-r", "--python"))
        ]
        unpinned = [w for w in targets if w != "." and "==" not in w and not OWN_WHEEL.fullmatch(w)]
        if unpinned:
            problems.append(f"pip install of unpinned {unpinned}")
    if not any(re.search(r"pip .*\bcheck\b", run) for run in runs):
        problems.append("no `pip check` proves the lock is a consistent closure")
    problems += _build_problems(text, runs)
    final = stages[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    if not users:
        problems.append("the final stage has no USER: the container runs as root")
    elif not re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]):
        problems.append(
            f"USER {users[-1]} is not a numeric non-zero UID (runAsNonRoot cannot verify a name)"
        )
    entrypoint = [c for c in final if c.cmd == "ENTRYPOINT"]
    if not entrypoint or not entrypoint[-1].json or list(entrypoint[-1].value) != ["ksa-auth"]:
        problems.append('ENTRYPOINT is not ["ksa-auth"] (exec form: signals reach the server)')
    copies = [c for c in final if c.cmd == "COPY"]
    if any(not any(f.startswith("--from=") for f in c.flags) for c in copies):
        problems.append("the final stage copies from the build context, not only from `build`")
    return problems


def image_user(text: str) -> int:
    (user,) = [c.value[0] for c in _stages(dockerfile.parse_string(text))[-1] if c.cmd == "USER"]
    return int(user.partition(":")[0])


def test_dockerfile_meets_the_issue() -> None:
    assert image_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_one_image_serves_both_services_on_the_manifests_port(
    rendered_overlays: dict[str, list[Document]],
) -> None:
    commands = dockerfile.parse_string(DOCKERFILE.read_text(encoding="utf-8"))
    final = _stages(commands)[-1]
    (expose,) = [c.value for c in final if c.cmd == "EXPOSE"]
    assert expose == (str(PORT),)
    uid = image_user(DOCKERFILE.read_text(encoding="utf-8"))
    for overlay, docs in rendered_overlays.items():
        for deployment in find(docs, "Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert container["image"].partition(":")[0] == "ksa-auth", overlay
            assert container["securityContext"]["runAsUser"] == uid, overlay
            assert container["ports"][0]["containerPort"] == PORT, overlay


def _dockerignore_includes() -> list[str]:
    """The paths the .dockerignore re-includes after excluding everything (`*` first)."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything is excluded unless re-included below
    return [p[1:].rstrip("/") for p in patterns if p.startswith("!")]


def _context_sources() -> list[str]:
    """What the Dockerfile's COPY lines take from the build context (not from a stage)."""
    commands = dockerfile.parse_string(DOCKERFILE.read_text(encoding="utf-8"))
    return [
        source
        for c in commands
        if c.cmd == "COPY" and not any(f.startswith("--from=") for f in c.flags)
        for source in c.value[:-1]
    ]


def test_dockerignore_sends_what_the_copies_need_and_no_more() -> None:
    included = _dockerignore_includes()
    for source in _context_sources():
        assert any(source == p or source.startswith(p + "/") for p in included), source
    assert not any(p in (".venv", "tests", ".git") for p in included)


def test_the_image_carries_no_devcluster() -> None:
    # The local cluster emulator is development tooling: `ksa-auth devcluster|up|demo` in the
    # image says so and exits 2. Neither a COPY line nor the build context may bring it in.
    sources = _context_sources()
    assert "entrypoints" in sources  # the COPY lines were read
    assert not [s for s in sources if s.strip("./").startswith("devcluster")]
    assert not [p for p in _dockerignore_includes() if p.strip("./").startswith("devcluster")]


MISTAKES = [
    ("root", lambda t: t.replace("USER 10001:10001", "USER root"), "is not a numeric non-zero"),
    ("uid-0", lambda t: t.replace("USER 10001:10001", "USER 0"), "is not a numeric non-zero"),
    ("no-user", lambda t: t.replace("USER 10001:10001\n", ""), "runs as root"),
    ("latest", lambda t: t.replace("python:3.11-slim", "python:latest"), "uses the latest tag"),
    ("untagged", lambda t: t.replace("python:3.11-slim", "python"), "has no tag"),
    ("fat-base", lambda t: t.replace("python:3.11-slim", "python:3.11"), "not a slim Python"),
    ("py312", lambda t: t.replace("python:3.11-slim", "python:3.12-slim"), "not a slim Python"),
    ("resolving", lambda t: t.replace("install --no-deps \\", "install \\"), "resolves versions"),
    (
        "unpinned",
        lambda t: t.replace("ksa_auth-*.whl \\", "ksa_auth-*.whl litestar \\"),
        "unpinned ['litestar']",
    ),
    ("no-lock", lambda t: t.replace(f"--requirement {LOCK}", "."), f"installed from {LOCK}"),
    ("no-check", lambda t: t.replace("/opt/ksa-auth/bin/python check", "-V"), "pip check"),
    ("syntax", lambda t: "# syntax=docker/dockerfile:1\n" + t, "pull a frontend"),
    ("build-isolation", lambda t: t.replace(" --no-build-isolation", ""), "build isolation"),
    (
        "unlocked-backend",
        lambda t: t.replace(f"--requirement {BUILD_LOCK}", "setuptools"),
        f"not installed from {BUILD_LOCK}",
    ),
    (
        "foreign-wheel",
        lambda t: t.replace(
            "/tmp/wheels/ksa_auth-*.whl", "/tmp/wheels/requests-2.0-py3-none-any.whl"
        ),
        "unpinned",
    ),
    ("shell-form", lambda t: t.replace('["ksa-auth"]', "ksa-auth"), "ENTRYPOINT"),
    (
        "context-copy",
        lambda t: t.replace("USER 10001", "COPY deploy/requirements.lock /tmp/\nUSER 10001"),
        "copies from the build context",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [pytest.param(m, e, id=i) for i, m, e in MISTAKES])
def test_dockerfile_mistake_is_reported(mutate: Callable[[str], str], expected: str) -> None:
    original = DOCKERFILE.read_text(encoding="utf-8")
    changed = mutate(original)
    assert changed != original, "the mistake no longer applies to deploy/Dockerfile"
    problems = image_problems(changed)
    assert any(expected in problem for problem in problems), problems


def test_pinned_install_check_sees_through_line_continuations() -> None:
    text = "FROM python:3.11-slim\nRUN pip install \\\n    requests\nUSER 1000\n"
    assert any("unpinned ['requests']" in p for p in image_problems(text))
