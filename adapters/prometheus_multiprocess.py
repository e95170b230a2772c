"""prometheus-client's multiprocess mode: the directory where every worker writes its counts."""

from __future__ import annotations

import os

__all__ = ["METRICS_DIRECTORY_VARIABLE", "shared_directory"]

# prometheus-client's own variable: set, every process writes its counts to files there and
# /metrics sums the files of all of them. The library reads it when it is first imported, so
# this module must not import it: `serve` prepares the directory before anything loads it.
METRICS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def shared_directory() -> str | None:
    """Where every worker's counts are summed from (prometheus-client's multiprocess mode), or
    None when this process answers for itself. `serve` sets it before the library loads."""
    return os.environ.get(METRICS_DIRECTORY_VARIABLE) or None
