"""Last of the reliability suites: no log of any process they ran holds a token or a signature.

Each suite also scans its own processes' logs when they stop; this sweeps every log file the
run captured (devcluster, be, be2), including those of processes still serving.
"""

from __future__ import annotations

import pytest

from tests.reliability.conftest import SharedStack, Tally, assert_no_leaks
from tests.reliability.logscan import SecretLedger

pytestmark = pytest.mark.e2e


def test_no_token_or_signature_in_any_captured_log(
    shared_stack: SharedStack, ledger: SecretLedger, tally: Tally
) -> None:
    # The shared stack's own pod tokens (be2 sends its token to the API server).
    for pod in shared_stack.cluster.pods:
        ledger.add_token(pod.token(), "pod token")
    files = sorted(tally.log_files)
    assert files, "no log was captured"
    assert sum(path.stat().st_size for path in files if path.exists()) > 0
    assert_no_leaks(ledger, files)
