"""With several workers, /metrics sums the workers' files and reads exactly as one worker's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Two scrapes with counts between them: a count copied to the file once must not be copied again.
PROGRAM = """
import sys
from adapters.prometheus_statistics import ValidationMetrics, render
metrics = ValidationMetrics()
metrics.watch_cache([1, 2, 3])
for result, seconds in [("ok", 0.0001), ("ok", 0.003), ("expired", 0.2)]:
    metrics.observe(result, seconds)
metrics.cache_hit(); metrics.cache_miss(); metrics.key_fetch("ok")
render(metrics.registry)
metrics.observe("ok", 9.0, stale=True)
metrics.cache_hit()
sys.stdout.write(render(metrics.registry).decode())
"""


def scrape(**env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env=environment | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sorted(line for line in result.stdout.splitlines() if not line.startswith("#"))


def test_the_shared_files_read_as_the_in_process_counts(tmp_path: Path) -> None:
    alone = scrape()
    shared = scrape(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert shared == alone
    assert 'ksa_validations_total{result="ok"} 3.0' in shared
    assert "ksa_validation_duration_seconds_count 4.0" in shared
    assert "ksa_verified_cache_hits_total 2.0" in shared
    assert "ksa_verified_cache_entries 3.0" in shared
    # The per-worker files are where the counts went.
    assert {path.name.split("_")[0] for path in tmp_path.glob("*.db")} >= {"counter", "histogram"}
