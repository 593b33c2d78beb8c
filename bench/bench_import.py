"""Import time of the SDK, in milliseconds above a bare interpreter (goal: <= 25 ms).

Each statement runs in a fresh ``python -c`` of the same interpreter (the venv's), the
statements interleaved so machine load hits them alike; the median of the runs is
compared with ``python -c "pass"`` measured in the same run. Wall time is the goal's
measure; the child's CPU time (user + sys) is printed beside it because on a shared
machine it is far less disturbed by other processes.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time

RUNS = 15
GOAL_MS = 25.0
BASELINE = "pass"
#: The goal is about the first two; the third is what the first getter call pays.
STATEMENTS = (
    "import incluster",
    "from incluster import tracking",
    "from incluster import context",
)
GOAL_STATEMENTS = STATEMENTS[:2]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: Users' interpreters cache bytecode; a PYTHONDONTWRITEBYTECODE inherited from the
#: machine would make every run time the compiler instead of the import.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _once(statement: str) -> tuple[float, float]:
    """(wall ms, CPU ms) of one fresh interpreter running ``statement``."""
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=_ENV)
    return (time.perf_counter() - started) * 1000, (_children_cpu() - cpu) * 1000


def _available(statement: str) -> bool:
    if statement == "from incluster import tracking":
        return importlib.util.find_spec("incluster.tracking") is not None
    return True


def main() -> None:
    samples: dict[str, list[tuple[float, float]]] = {
        s: [] for s in (BASELINE, *STATEMENTS) if _available(s)
    }
    for statement in samples:  # warm the page cache and the .pyc files
        _once(statement)
    for _ in range(RUNS):
        for statement in samples:
            samples[statement].append(_once(statement))

    def medians(statement: str) -> tuple[float, float]:
        runs = samples[statement]
        return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)

    base_wall, base_cpu = medians(BASELINE)
    print(
        f'   python -c "pass": {base_wall:.1f} ms wall, {base_cpu:.1f} ms CPU '
        f"(median of {RUNS}; {sys.executable})"
    )
    for statement in STATEMENTS:
        if statement not in samples:
            print(f'   python -c "{statement}": not available')
            continue
        wall, cpu = medians(statement)
        if statement in GOAL_STATEMENTS:
            verdict = f"goal <= {GOAL_MS:g} ms: " + (
                "ok" if wall - base_wall <= GOAL_MS else "OVER"
            )
        else:
            verdict = "no goal: paid by the first getter call"
        print(
            f'   python -c "{statement}": +{wall - base_wall:.1f} ms above bare Python '
            f"(CPU +{cpu - base_cpu:.1f} ms; {verdict})"
        )


if __name__ == "__main__":
    main()
