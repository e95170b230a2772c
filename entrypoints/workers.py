"""Several server workers in one pod: the metrics directory they share, ready before they start."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from adapters.prometheus_multiprocess import METRICS_DIRECTORY_VARIABLE
from entrypoints.settings import SettingsError

__all__ = ["prepare_metrics_directory"]


def prepare_metrics_directory(environ: MutableMapping[str, str], workers: int) -> None:
    """Make /metrics answer for every worker: the shared directory set and emptied.

    Must run before prometheus_client is first imported in this process and before any worker
    starts: the library picks its file-backed values at import, and files left from an earlier
    run (a restarted container keeps its emptyDir) would be counted again. One worker without
    the variable keeps the in-process counts. A directory made here is removed at exit.

    Raises:
        SettingsError: the directory is unusable (one line naming the variable).
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prepare_metrics_directory must run before prometheus_client loads")
    given = environ.get(METRICS_DIRECTORY_VARIABLE, "").strip()
    if not given and workers == 1:
        return
    if given:
        _empty(Path(given))
        environ[METRICS_DIRECTORY_VARIABLE] = given
        return
    try:
        made = tempfile.mkdtemp(prefix="ksa-metrics-")
    except OSError as exc:
        raise SettingsError(
            f"{METRICS_DIRECTORY_VARIABLE}: unset, and no temporary directory could be made for "
            f"the workers' metrics ({exc.strerror}); set it to a writable directory"
        ) from None
    environ[METRICS_DIRECTORY_VARIABLE] = made
    atexit.register(_remove_if_mine, made, os.getpid())


def _remove_if_mine(directory: str, owner: int) -> None:
    # A forked worker inherits this hook: only the process that made the directory removes it.
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


def _empty(directory: Path) -> None:
    name = METRICS_DIRECTORY_VARIABLE
    if not directory.is_dir():
        raise SettingsError(f"{name}: {directory} is not a directory")
    probe = directory / f".ksa-write-check-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
        # Only the library's own files: the directory may be a volume shared with other things.
        for stale in directory.glob("*.db"):
            stale.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise SettingsError(
            f"{name}: {directory} is not writable ({exc.strerror}); mount an emptyDir there"
        ) from None
