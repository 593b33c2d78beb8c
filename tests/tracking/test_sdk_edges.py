"""SDK edge cases a hostile or careless input reaches: each is refused or skipped, never a hang.

- ``log_artifact_ref`` outside the outputs directory raises, as docs/tracking.md says
  (``/etc/passwd`` used to be hashed);
- hashing refuses what is not a regular file (a FIFO or ``/dev/zero`` blocked training);
- a metric name with a lone surrogate is refused at ``log_metric``;
- ``incluster metrics`` never crashes on any line of an event file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from incluster import cli
from incluster.tracking.run import Run


@pytest.fixture
def run(tmp_path: Path):
    with Run(str(tmp_path / "out"), "master", 0) as r:
        yield r


def test_an_artifact_outside_the_outputs_directory_raises(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside the outputs directory"):
        run.log_artifact_ref("/etc/passwd")
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"x")
    with pytest.raises(ValueError, match="outside the outputs directory"):
        run.log_artifact_ref(str(outside))
    inside = Path(run.outputs_path) / "model.bin"
    inside.write_bytes(b"weights")
    record = run.log_artifact_ref(str(inside))
    assert record["path"] == "model.bin"


def test_a_fifo_or_a_device_is_refused_without_blocking(run: Run) -> None:
    fifo = Path(run.outputs_path) / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        run.log_artifact_ref("pipe")
    folder = Path(run.outputs_path) / "dir"
    folder.mkdir()
    os.mkfifo(folder / "inner")
    with pytest.raises(ValueError, match="not a regular file"):
        run.log_artifact_ref("dir")
    (Path(run.outputs_path) / "zero").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="outside the outputs directory"):
        run.log_artifact_ref("zero")


def test_a_metric_name_with_a_lone_surrogate_is_refused(run: Run) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        run.log_metric("loss\udc80", 1.0)
    run.log_metric("loss", 1.0)  # the run goes on


LINES = [
    b'{"k":"metric","n":["x"],"v":1,"s":0,"t":0}\n',
    b'{"k":"metric","n":"x","v":1,"s":[1],"t":0}\n',
    b'{"k":"metric","n":"x","v":1,"s":0,"t":"soon"}\n',
    b'{"k":"metric","n":"\\ud800","v":1,"s":0,"t":0}\n',
    b'{"k":"metric","n":"y","v":1,"s":true,"t":0}\n',
    b"[" * 5000 + b"]" * 5000 + b"\n",
    b'{"k":"metric","n":"ok","v":1e400,"s":1,"t":0}\n',
    b"\xff\xfe garbage\n",
]


MAIN = "from incluster.cli import main; raise SystemExit(main())"


def _metrics(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MAIN, "metrics", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_incluster_metrics_survives_every_known_bad_line(tmp_path: Path) -> None:
    events = tmp_path / "master-0.jsonl"
    events.write_bytes(b"".join(LINES) + b'{"k":"metric","n":"loss","v":0.5,"s":2,"t":1}\n')
    result = _metrics(events)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "loss" in result.stdout


# Skipped lines are reported with a RuntimeWarning by design (tested in test_tracking_reader_cli);
# here only "never crashes" is under test.
@pytest.mark.filterwarnings("ignore:.*incomplete or invalid line:RuntimeWarning")
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hs.lists(hs.binary(max_size=60) | hs.sampled_from(LINES), max_size=6))
def test_incluster_metrics_never_crashes_on_any_line(tmp_path: Path, lines: list[bytes]) -> None:
    events = tmp_path / "fuzz.jsonl"
    events.write_bytes(b"\n".join(lines) + b'\n{"k":"metric","n":"loss","v":1,"s":1,"t":1}\n')
    assert cli.main(["metrics", str(events)]) in (0, 1)
