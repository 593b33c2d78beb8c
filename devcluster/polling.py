"""Poll a condition with a deadline: the one way dev code waits for the API or a process.

Tests, the demo and the benchmarks wait for the same kind of thing (an object to appear,
a phase to change); each raises its own error type, so the caller picks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.02,
    error: type[Exception] = TimeoutError,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    At the deadline, raise ``error`` naming ``what``; the predicate is always tried once
    more after the deadline so a slow machine does not fail a condition that just became
    true.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
