"""log_metric throughput against two raw baselines measured in the same run.

Each contender appends N one-metric lines to its own O_APPEND file in a temp dir, all
in the same format (kind, name, value, step, ms timestamp; docs/tracking.md):
  * ``json.dumps``: ``os.write(fd, (json.dumps({...}) + "\\n").encode())``
  * ``f-string``: ``os.write(fd, f'{{"k":"metric",...}}\\n'.encode())``, the fastest a
    durable per-call write can be in Python
  * ``tracking.log_metric`` (the module function users call) and ``Run.log_metric``.
Rounds are interleaved and the best round of each is kept, so a noisy neighbour on the
shared machine hurts every contender alike. Goals: >= 0.7x json.dumps, >= 0.65x f-string.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable

from incluster import tracking
from incluster.tracking.events import Metric, read_events

N = 60_000
ROUNDS = 5
OPEN = os.O_WRONLY | os.O_APPEND | os.O_CREAT


def _json_dumps_loop(fd: int) -> None:
    write, dumps, now = os.write, json.dumps, time.time_ns
    for i in range(N):
        line = dumps({"k": "metric", "n": "loss", "v": i * 0.001, "s": i, "t": now() // 1_000_000})
        write(fd, (line + "\n").encode())


def _fstring_loop(fd: int) -> None:
    write, now = os.write, time.time_ns
    for i in range(N):
        line = f'{{"k":"metric","n":"loss","v":{i * 0.001!r},"s":{i},"t":{now() // 1_000_000}}}\n'
        write(fd, line.encode())


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return N / (time.perf_counter() - started)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        fds = {name: os.open(os.path.join(tmp, name), OPEN, 0o644) for name in ("json", "fstr")}
        run = tracking.init(os.path.join(tmp, "run"))
        log_metric = tracking.log_metric
        run_log_metric = run.log_metric

        def module_loop() -> None:
            for i in range(N):
                log_metric("loss", i * 0.001, step=i)

        def run_loop() -> None:
            for i in range(N):
                run_log_metric("loss", i * 0.001, step=i)

        contenders: dict[str, Callable[[], None]] = {
            "json.dumps + os.write": lambda: _json_dumps_loop(fds["json"]),
            "f-string + os.write": lambda: _fstring_loop(fds["fstr"]),
            "tracking.log_metric": module_loop,
            "Run.log_metric": run_loop,
        }
        best = dict.fromkeys(contenders, 0.0)
        for _ in range(ROUNDS):
            for name, fn in contenders.items():
                best[name] = max(best[name], _timed(fn))
        tracking.end()
        for fd in fds.values():
            os.close(fd)

        points = sum(1 for r in read_events(run.events_path) if isinstance(r, Metric))
        per_point = os.path.getsize(run.events_path) / points

    for name, rate in best.items():
        print(f"   {name:<24} {rate / 1000:8.1f}k calls/s")
    json_rate, fstr_rate = best["json.dumps + os.write"], best["f-string + os.write"]
    rate = best["tracking.log_metric"]
    print(f"   log_metric / json.dumps baseline: {rate / json_rate:.2f}x (goal >= 0.70x)")
    print(f"   log_metric / f-string baseline:   {rate / fstr_rate:.2f}x (goal >= 0.65x)")
    print(f"   bytes on disk per metric point:   {per_point:.1f} ({points} points)")


if __name__ == "__main__":
    main()
