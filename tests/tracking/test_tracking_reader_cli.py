"""Reading events back: torn lines, directories of replicas, and `incluster metrics`."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
from pathlib import Path

import pytest
from incluster import read_events
from incluster.cli import main
from incluster.tracking import events
from incluster.tracking.run import Run
from tracking_helpers import ROOT


def _two_replicas(root: Path) -> None:
    with Run(root, "master", 0, register_atexit=False) as master:
        for step, loss in enumerate([3.0, 1.0, float("nan"), 2.0]):
            master.log_metric("loss", loss, step=step)
        master.log_metrics(step=4, acc=0.5)
    with Run(root, "worker", 0, register_atexit=False) as worker:
        worker.log_metric("loss", 9.0, step=0)


def test_truncated_last_line_is_skipped_and_reported(run: Run) -> None:
    run.log_metric("a", 1.0, step=0)
    run.log_metric("a", 2.0, step=1)
    with open(run.events_path, "ab") as f:
        f.write(b'{"k":"metric","n":"a","v":3.')  # a power loss mid-line
    reader = read_events(run.events_path)
    with pytest.warns(RuntimeWarning, match="skipped 1 incomplete"):
        got = [r.value for r in reader if isinstance(r, events.Metric)]
    assert got == [1.0, 2.0]
    assert reader.skipped == 1


def test_garbage_line_in_the_middle_does_not_hide_the_rest(run: Run) -> None:
    run.log_metric("a", 1.0)
    with open(run.events_path, "ab") as f:
        f.write(b'{"k":"metr\n')
    run.log_metric("a", 2.0)
    reader = read_events(run.events_path)
    with pytest.warns(RuntimeWarning):
        got = [r.value for r in reader if isinstance(r, events.Metric)]
    assert got == [1.0, 2.0]
    assert reader.skipped == 1


def test_unknown_kinds_are_returned_not_dropped(run: Run) -> None:
    with open(run.events_path, "ab") as f:
        f.write(b'{"k":"histogram","n":"h","t":1.0}\n')
    unknown = [r for r in read_events(run.events_path) if isinstance(r, events.Unknown)]
    assert unknown == [
        events.Unknown("worker-3", "histogram", {"k": "histogram", "n": "h", "t": 1.0})
    ]


def test_directory_reads_every_replica(tmp_path: Path) -> None:
    _two_replicas(tmp_path)
    sources = {r.source for r in read_events(tmp_path)}
    assert sources == {"master-0", "worker-0"}
    assert {r.source for r in read_events(tmp_path / "events")} == sources


def test_metrics_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_replicas(tmp_path)
    assert main(["metrics", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["source", "metric", "latest", "step", "min", "max", "count"]
    rows = {(r.split()[0], r.split()[1]): r.split()[2:] for r in out[1:]}
    assert rows == {
        ("master-0", "loss"): ["2", "3", "1", "3", "4"],
        ("master-0", "acc"): ["0.5", "4", "0.5", "0.5", "1"],
        ("worker-0", "loss"): ["9", "0", "9", "9", "1"],
    }


def test_metrics_csv_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_replicas(tmp_path)
    assert main(["metrics", str(tmp_path), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    loss = [r for r in rows if r["source"] == "master-0" and r["name"] == "loss"]
    assert [r["step"] for r in loss] == ["0", "1", "2", "3"]
    values = [float(r["value"]) for r in loss]
    assert values[:2] == [3.0, 1.0]
    assert math.isnan(values[2])
    assert len(rows) == 6
    assert all(float(r["timestamp"]) > 0 for r in rows)


def test_metrics_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", str(tmp_path / "missing")]) == 2
    assert "neither an event file nor a directory" in capsys.readouterr().err
    with Run(tmp_path, register_atexit=False) as r:
        r.log_inputs(a=1)
    assert main(["metrics", str(tmp_path)]) == 1
    with pytest.raises(SystemExit):
        main([])


def test_console_script_is_installed(tmp_path: Path) -> None:
    _two_replicas(tmp_path)
    script = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "incluster"
    if not script.exists():
        pytest.skip(f"{script} is not installed (run `make install`)")
    proc = subprocess.run(
        [str(script), "metrics", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "master-0" in proc.stdout
    assert "worker-0" in proc.stdout


def test_a_restarted_replica_does_not_glue_onto_a_cut_line(tmp_path: Path) -> None:
    with Run(tmp_path, register_atexit=False) as first:
        first.log_metric("a", 1.0, step=0)
    with open(first.events_path, "ab") as f:
        f.write(b'{"k":"metric","n":"a","v":2.')  # killed mid-write
    with Run(tmp_path, register_atexit=False) as second:
        second.log_metric("a", 3.0, step=2)
    reader = read_events(tmp_path)
    with pytest.warns(RuntimeWarning, match="skipped 1"):
        got = [(type(r).__name__, getattr(r, "value", None)) for r in reader]
    assert got == [
        ("RunStarted", None),
        ("Metric", 1.0),
        ("RunEnded", None),
        ("RunStarted", None),
        ("Metric", 3.0),
        ("RunEnded", None),
    ]
    assert reader.skipped == 1
