"""Import time of the SDK, in milliseconds above a bare interpreter (goal: <= 25 ms).

Each statement runs in a fresh ``python -c`` of the same interpreter (the venv's), the
three statements interleaved so machine load hits them alike; the median of the runs is
compared with ``python -c "pass"`` measured in the same run.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import time

RUNS = 15
GOAL_MS = 25.0
BASELINE = "pass"
STATEMENTS = ("import incluster", "from incluster import tracking")


def _once(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    available = [
        s
        for s in STATEMENTS
        if s != "from incluster import tracking"
        or importlib.util.find_spec("incluster.tracking") is not None
    ]
    samples: dict[str, list[float]] = {s: [] for s in (BASELINE, *available)}
    for statement in samples:  # warm the page cache and .pyc files
        _once(statement)
    for _ in range(RUNS):
        for statement in samples:
            samples[statement].append(_once(statement))
    base = statistics.median(samples[BASELINE])
    print(f'   python -c "pass": {base:.1f} ms (median of {RUNS}; {sys.executable})')
    for statement in STATEMENTS:
        if statement not in samples:
            print(f'   python -c "{statement}": not available')
            continue
        above = statistics.median(samples[statement]) - base
        verdict = "ok" if above <= GOAL_MS else "OVER GOAL"
        print(
            f'   python -c "{statement}": +{above:.1f} ms above bare Python '
            f"(goal <= {GOAL_MS:g} ms: {verdict})"
        )


if __name__ == "__main__":
    main()
