"""Copy Swagger UI's browser assets from the pinned npm package into entrypoints/swagger_ui."""

# The docs page (/schema/swagger) must work where there is no internet, so its JS, CSS and
# favicon are package data, committed, and carried by the wheel and the image without npm.
# To move to another release: change the version in package.json, `npm install
# --package-lock-only --ignore-scripts` here, then `make swagger-ui` (this script), and commit.

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PACKAGE = "swagger-ui-dist"
LOCK = HERE / "package-lock.json"
INSTALLED = HERE / "node_modules" / PACKAGE
TARGET = ROOT / "entrypoints" / "swagger_ui"
MANIFEST = TARGET / "SOURCE.json"
# What the page loads, and the licence terms that come with it; no source maps, no other UIs.
FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "LICENSE",
    "NOTICE",
)


class VendorError(Exception):
    """One line saying what is wrong with the vendored copy or the fetch."""


def locked() -> tuple[str, str]:
    """(version, integrity) of the package as package-lock.json pins it."""
    entry = json.loads(LOCK.read_text())["packages"][f"node_modules/{PACKAGE}"]
    return entry["version"], entry["integrity"]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch() -> None:
    """npm ci from the lock (npm checks the tarball's integrity), then copy FILES and a manifest."""
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm not found: it is needed to refresh the vendored Swagger UI")
    # --ignore-scripts: the package depends on an analytics package whose install script
    # reports home; nothing here needs any install script.
    subprocess.run(  # noqa: S603 (fixed arguments)
        [npm, "ci", "--prefix", str(HERE), "--ignore-scripts", "--no-audit", "--no-fund"],
        check=True,
        env={**os.environ, "SCARF_ANALYTICS": "false"},
    )
    version, integrity = locked()
    installed = json.loads((INSTALLED / "package.json").read_text())["version"]
    if installed != version:
        raise VendorError(f"npm installed {PACKAGE} {installed}, the lock pins {version}")
    TARGET.mkdir(exist_ok=True)
    for name in FILES:
        shutil.copyfile(INSTALLED / name, TARGET / name)
    manifest = {
        "package": PACKAGE,
        "version": version,
        "integrity": integrity,
        "files": {name: sha256(TARGET / name) for name in FILES},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{PACKAGE} {version}: {len(FILES)} files in {shown(TARGET)}")


def problems() -> list[str]:
    """What differs between the lock, the manifest and the vendored files (empty: nothing)."""
    if not MANIFEST.exists():
        return [f"{shown(MANIFEST)} is missing: run make swagger-ui"]
    manifest = json.loads(MANIFEST.read_text())
    found = []
    version, integrity = locked()
    if (manifest.get("version"), manifest.get("integrity")) != (version, integrity):
        found.append(
            f"vendored {PACKAGE} {manifest.get('version')} is not the locked {version}: "
            "run make swagger-ui"
        )
    listed = manifest.get("files", {})
    for name in FILES:
        path = TARGET / name
        if not path.exists():
            found.append(f"{name} is missing from {shown(TARGET)}")
        elif sha256(path) != listed.get(name):
            found.append(f"{name} differs from {PACKAGE} {version}: run make swagger-ui")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only compare the vendored files with the lock"
    )
    args = parser.parse_args(argv)
    try:
        if not args.check:
            fetch()
        found = problems()
    except (VendorError, subprocess.CalledProcessError) as error:
        print(f"swagger-ui: {error}", file=sys.stderr)
        return 1
    for problem in found:
        print(f"swagger-ui: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
