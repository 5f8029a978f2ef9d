"""Test tiers: `make test` (CI) runs every test at full strength; `make test-fast` (IQ_TEST_TIER=fast,
no party processes) runs the property tests with a quarter of their examples, for editing."""
from __future__ import annotations

import os

FAST = os.environ.get("IQ_TEST_TIER") == "fast"


def examples(n: int) -> int:
    """Hypothesis max_examples for this tier: n in the full suite, n // 4 (at least 10) in the fast one."""
    return max(10, n // 4) if FAST and n > 10 else n
