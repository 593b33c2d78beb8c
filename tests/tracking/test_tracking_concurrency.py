"""Eight threads logging into one run: no lost, torn or interleaved lines."""

from __future__ import annotations

import threading

import pytest
from incluster import read_events
from incluster.tracking import events
from incluster.tracking.run import Run
from tracking_helpers import lines

THREADS = 8
PER_THREAD = 3000


def test_threads_lose_nothing(run: Run) -> None:
    barrier = threading.Barrier(THREADS)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(PER_THREAD):
            if i % 10 == 0:
                run.log_metrics(step=i, **{f"t{n}_a": i, f"t{n}_b": float(i)})
            else:
                run.log_metric(f"t{n}", i * 0.5, step=i)
        run.log_inputs(**{f"thread{n}": n})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.end()

    raw = lines(run.events_path)
    reader = read_events(run.events_path)
    metrics = [r for r in reader if isinstance(r, events.Metric)]
    assert reader.skipped == 0
    per_thread_points = PER_THREAD - PER_THREAD // 10 + 2 * (PER_THREAD // 10)
    assert len(metrics) == THREADS * per_thread_points
    for n in range(THREADS):
        steps = [m.step for m in metrics if m.name == f"t{n}"]
        assert steps == [i for i in range(PER_THREAD) if i % 10]  # in order, none lost
        assert [m.value for m in metrics if m.name == f"t{n}_b"] == [
            float(i) for i in range(0, PER_THREAD, 10)
        ]
    # start + metrics + inputs + end
    assert len(raw) == 1 + len(metrics) + THREADS + 1
    summary = run.summary()
    assert summary["inputs"] == {f"thread{n}": n for n in range(THREADS)}
    assert summary["metrics"]["t0"] == {"value": (PER_THREAD - 1) * 0.5, "step": PER_THREAD - 1}


@pytest.mark.timeout(30)  # a non-reentrant lock deadlocks here
def test_a_signal_handler_can_log_and_end_mid_write(run: Run) -> None:
    """SIGTERM handlers run in the main thread between bytecodes, maybe inside the lock."""
    import signal

    def on_term(signum: int, frame: object) -> None:
        run.log_metric("terminated", 1, step=7)
        run.end("terminated")

    previous = signal.signal(signal.SIGUSR1, on_term)
    try:
        with run._lock:  # where the handler would land during a write
            signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    got = list(read_events(run.events_path))
    assert got[-2] == events.Metric("worker-3", "terminated", 1, 7, got[-2].timestamp)
    assert isinstance(got[-1], events.RunEnded)
    assert got[-1].status == "terminated"
