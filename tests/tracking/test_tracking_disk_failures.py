"""A full disk or an unwritable outputs dir never stops training.

The out-of-space case runs in a child with ``RLIMIT_FSIZE``: writes past the limit fail
with EFBIG (Python ignores SIGXFSZ), and the one write that straddles the limit is
short, which exercises the truncate-back path that keeps half lines off disk.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from incluster import read_events
from incluster.tracking import events
from incluster.tracking.run import Run
from tracking_helpers import lines, run_python

LIMIT = 20_000
N = 2_000


def test_file_size_limit_keeps_training_running(tmp_path: Path) -> None:
    proc = run_python(
        f"""
        import json, resource, warnings
        from incluster.tracking.run import Run
        resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = Run({str(tmp_path)!r}, "worker", 1)
            for i in range({N}):
                run.log_metric("loss", 1.0 / (i + 1), step=i)
            run.log_metrics(step={N}, a=1, b=2)
            run.log_inputs(x=1)
            run.end()
        print(json.dumps({{"dropped": run.dropped, "warnings": len(caught),
                          "message": str(caught[0].message) if caught else ""}}))
        """
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    path = tmp_path / "events" / "worker-1.jsonl"
    on_disk = lines(path)  # no torn line: the straddling write was cut back
    assert path.stat().st_size <= LIMIT
    attempted = 1 + N + 2 + 1 + 1  # start, metrics, two-metric call, inputs, end
    assert report["dropped"] > 0
    assert len(on_disk) + report["dropped"] == attempted
    assert report["warnings"] == 1
    assert "File too large" in report["message"]
    steps = [r.step for r in read_events(path) if isinstance(r, events.Metric)]
    assert steps == list(range(len(steps)))  # a prefix, in order


def test_unwritable_events_location_warns_once(tmp_path: Path) -> None:
    # A directory squatting on the event file's name: open() fails like a read-only dir.
    (tmp_path / "events" / "master-0.jsonl").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run(tmp_path, register_atexit=False)
        for i in range(100):
            run.log_metric("loss", 0.1, step=i)
        run.log_metrics(step=100, a=1.0, b=2.0)
        run.log_inputs(lr=0.1)
        run.end()
    assert [w.category for w in caught] == [RuntimeWarning]
    assert "cannot write" in str(caught[0].message)
    # the start record, 100 metrics, a two-metric call, the inputs and the end record
    assert run.dropped == 1 + 100 + 2 + 1 + 1
    assert run.summary()["metrics"]["loss"] == {"value": 0.1, "step": 99}


def test_outputs_under_a_file_warns_and_continues(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run(blocker / "outputs", register_atexit=False)
        run.log_metric("x", 1.0)
        run.end()
    assert len(caught) == 1
    assert run.dropped == 3  # start, metric, end


def test_warnings_as_errors_still_never_raise(tmp_path: Path) -> None:
    (tmp_path / "events" / "master-0.jsonl").mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = Run(tmp_path, register_atexit=False)
        run.log_metric("x", 1.0)
        run.log_metrics(step=1, y=2.0)
        run.end()
    assert run.dropped == 4  # start, x, y, end
