"""Every v1 module function and Run method, checked by reading the file back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from incluster import read_events, tracking
from incluster.schemas import ArtifactKind
from incluster.tracking import events
from incluster.tracking.run import Run
from tracking_helpers import lines, run_python


def records(run: Run) -> list[events.Event]:
    return list(read_events(run.events_path))


def test_seed_002_script_round_trips(default_run: Run, clean_env: Path) -> None:
    tracking.log_inputs(param1=42)
    tracking.log_tags(["foo", "bar"])
    tracking.log_metric(name="metric1", value=0.25, step=1, timestamp=1700000000.5)
    tracking.log_metrics(metric2=0.5, metric3=3, step=2)
    tracking.log_outputs(res1=7, res2="test value")
    asset = tracking.get_outputs_path("test.txt")
    Path(asset).write_text("Artifact content.")
    tracking.log_artifact_ref(path=asset, kind=ArtifactKind.FILE)
    csv_path = tracking.get_outputs_path("file.csv")
    Path(csv_path).write_text("a,b\n1,2\n")
    tracking.log_artifact_ref(path=csv_path, kind=ArtifactKind.CSV, name="my-csv")
    tracking.end()

    assert default_run.events_path == str(clean_env / "events" / "master-0.jsonl")
    got = [r for r in read_events(clean_env) if not isinstance(r, events.RunStarted)]
    src = "master-0"
    t = got[2].timestamp
    assert got[0] == events.Inputs(src, {"param1": 42}, got[0].timestamp)
    assert got[1] == events.Tags(src, ["foo", "bar"], got[1].timestamp)
    assert got[2] == events.Metric(src, "metric1", 0.25, 1, 1700000000.5)
    assert t == 1700000000.5
    assert got[3] == events.Metric(src, "metric2", 0.5, 2, got[3].timestamp)
    assert got[4] == events.Metric(src, "metric3", 3, 2, got[3].timestamp)
    assert got[5] == events.Outputs(src, {"res1": 7, "res2": "test value"}, got[5].timestamp)
    artifact, csv_ref, ended = got[6], got[7], got[8]
    assert isinstance(artifact, events.ArtifactRef)
    assert (artifact.name, artifact.kind, artifact.path) == ("test", "file", "test.txt")
    assert str(artifact.hash).startswith("sha256:")
    assert isinstance(csv_ref, events.ArtifactRef)
    assert (csv_ref.name, csv_ref.kind, csv_ref.path) == ("my-csv", "csv", "file.csv")
    assert isinstance(ended, events.RunEnded)
    assert (ended.status, ended.dropped) == ("succeeded", 0)
    assert len(got) == 9


def test_non_finite_metrics_are_stored_as_json_strings_and_read_back(run: Run) -> None:
    run.log_metric("loss", float("nan"), step=0)
    run.log_metric("loss", float("inf"), step=1)
    run.log_metrics(step=2, loss=float("-inf"), acc=1.0)
    raw = [json.loads(line) for line in lines(run.events_path)[1:]]
    assert [r["v"] for r in raw] == ["NaN", "Infinity", "-Infinity", 1.0]
    values = [r.value for r in records(run) if isinstance(r, events.Metric)]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 1.0]


def test_numeric_types_beyond_float_and_int(run: Run) -> None:
    from decimal import Decimal
    from fractions import Fraction

    class Tensor0d:
        def __float__(self) -> float:
            return 2.5

    class Index:  # like numpy.int64: an int by __index__ only
        def __init__(self, value: int) -> None:
            self.value = value

        def __index__(self) -> int:
            return self.value

    run.log_metric("a", Decimal("0.5"), step=Index(2))
    run.log_metric("b", Fraction(1, 4))
    run.log_metric("c", Tensor0d(), step=9)
    run.log_metric("d", 10**20)
    got = [(r.name, r.value, r.step) for r in records(run) if isinstance(r, events.Metric)]
    assert got == [("a", 0.5, 2), ("b", 0.25, None), ("c", 2.5, 9), ("d", 10**20, None)]


def test_summary_tracks_latest_values_and_version(run: Run) -> None:
    start = run.version
    run.log_metric("loss", 1.0, step=1)
    run.log_metric("loss", 0.5, step=2)
    run.log_metric("nan", float("nan"))
    run.log_inputs(lr=0.1)
    run.log_inputs(batch=32)
    run.log_outputs(acc=0.9)
    run.log_tags("a")
    run.log_tags(["b", "a"])
    digest = run.log_data_ref(b"xyz", "train")
    summary = run.summary()
    assert run.version == start + 9
    json.dumps(summary, allow_nan=False)  # JSON-able as promised
    assert summary["metrics"] == {
        "loss": {"value": 0.5, "step": 2},
        "nan": {"value": "NaN", "step": None},
    }
    assert summary["inputs"] == {"lr": 0.1, "batch": 32}
    assert summary["outputs"] == {"acc": 0.9}
    assert summary["tags"] == ["a", "b"]
    assert summary["data_refs"] == {"train": digest}
    assert summary["version"] == run.version
    assert summary["dropped"] == 0


def test_get_outputs_path_creates_parents(default_run: Run, clean_env: Path) -> None:
    assert tracking.get_outputs_path() == str(clean_env)
    nested = tracking.get_outputs_path("a/b/c.txt")
    assert nested == str(clean_env / "a" / "b" / "c.txt")
    assert (clean_env / "a" / "b").is_dir()


def test_artifact_ref_relative_path_and_directory(run: Run) -> None:
    model_dir = Path(run.get_outputs_path("model/weights.bin")).parent
    (model_dir / "weights.bin").write_bytes(b"\x00" * 10)
    ref = run.log_artifact_ref("model", kind="model")
    assert ref["name"] == "model"
    assert ref["kind"] == "model"
    assert ref["path"] == "model"
    (model_dir / "weights.bin").write_bytes(b"\x01" * 10)
    assert run.log_artifact_ref("model", kind="model")["hash"] != ref["hash"]


def test_artifact_outside_outputs_raises(run: Run, tmp_path: Path) -> None:
    """As docs/tracking.md says (it used to be hashed and stored absolute)."""
    data = tmp_path / "elsewhere.txt"
    data.write_text("x")
    with pytest.raises(ValueError, match="outside the outputs directory"):
        run.log_artifact_ref(data)


def test_run_as_context_manager_records_failure(tmp_path: Path) -> None:
    def train(r: Run) -> None:
        with r:
            r.log_metric("x", 1)
            raise RuntimeError("boom")

    r = Run(tmp_path, register_atexit=False)
    with pytest.raises(RuntimeError, match="boom"):
        train(r)
    assert r.ended
    ended = list(read_events(r.events_path))[-1]
    assert isinstance(ended, events.RunEnded)
    assert ended.status == "failed"


def test_end_is_idempotent_and_later_logging_is_dropped_not_raised(run: Run) -> None:
    run.log_metric("x", 1.0)
    run.end()
    run.end()
    with pytest.warns(RuntimeWarning, match="run has ended"):
        run.log_metric("x", 2.0)
    assert run.dropped == 1
    kinds = [type(r).__name__ for r in records(run)]
    assert kinds == ["RunStarted", "Metric", "RunEnded"]


def test_module_api_starts_a_new_run_after_end(default_run: Run, clean_env: Path) -> None:
    tracking.log_metric("x", 1.0)
    tracking.end()
    tracking.log_metric("x", 2.0)
    second = tracking.current_run()
    assert second is not default_run
    assert second.events_path == default_run.events_path
    tracking.end()
    kinds = [type(r).__name__ for r in read_events(clean_env)]
    assert kinds == ["RunStarted", "Metric", "RunEnded"] * 2


def test_task_identity_names_the_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCLUSTER_TASK_INFO", '{"type": "worker", "index": 2}')
    tracking.end()
    run = tracking.init()
    try:
        assert run.events_path == str(clean_env / "events" / "worker-2.jsonl")
    finally:
        tracking.end()


def test_exit_without_end_still_writes_end_record(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_python(
        f"""
        from incluster import tracking
        tracking.init({str(out)!r})
        tracking.log_metric("x", 1.0, step=1)
        """
    )
    assert proc.returncode == 0, proc.stderr
    got = list(read_events(out))
    assert [type(r).__name__ for r in got] == ["RunStarted", "Metric", "RunEnded"]


def test_import_stays_light(tmp_path: Path) -> None:
    proc = run_python(
        f"""
        import sys
        from incluster import tracking, Experiment
        tracking.init({str(tmp_path)!r})
        tracking.log_metric("x", 1.0)
        Experiment().log_data_ref(memoryview(b"abc"), "d")
        heavy = {{"numpy", "pandas", "pydantic", "yaml", "kubernetes", "kopf", "requests"}}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_timestamps_are_ms_from_seconds_or_datetimes(run: Run) -> None:
    from datetime import UTC, datetime

    run.log_metric("a", 1.0, timestamp=1700000000.25)
    run.log_metric("a", 2.0, timestamp=datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    run.log_metrics(timestamp=1700000001, b=1)
    raw = [json.loads(line)["t"] for line in lines(run.events_path)[1:]]
    assert raw == [1700000000250, 1704164645678, 1700000001000]
    got = [r.timestamp for r in records(run) if isinstance(r, events.Metric)]
    assert got == [1700000000.25, 1704164645.678, 1700000001.0]


def test_init_twice_returns_the_open_run(default_run: Run, tmp_path: Path) -> None:
    assert tracking.init() is default_run
    assert tracking.init(default_run.outputs_path) is default_run
    with pytest.raises(ValueError, match="already open"):
        tracking.init(tmp_path / "elsewhere")


def test_artifact_names_may_nest(run: Run) -> None:
    path = run.get_outputs_path("ckpt/3.pt")
    Path(path).write_bytes(b"w")
    assert run.log_artifact_ref(path, "checkpoint", name="checkpoints/epoch-3")["name"] == (
        "checkpoints/epoch-3"
    )


def test_a_forked_child_does_not_end_the_parents_run(run: Run) -> None:
    import os

    run.log_metric("before", 1.0)
    pid = os.fork()
    if pid == 0:  # child: log one point, then exit through atexit-like end()
        code = 0
        try:
            run.log_metric("child", 2.0)
            run.end()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.log_metric("after", 3.0)
    run.end()
    kinds = [(type(r).__name__, getattr(r, "name", "")) for r in records(run)]
    assert kinds == [
        ("RunStarted", ""),
        ("Metric", "before"),
        ("Metric", "child"),
        ("Metric", "after"),
        ("RunEnded", ""),
    ]


def test_summary_keeps_what_was_logged(run: Run) -> None:
    layers = [64, 32]
    run.log_inputs(layers=layers)
    layers.append(16)  # the caller keeps mutating its own object
    assert run.summary()["inputs"] == {"layers": [64, 32]}


def test_module_api_after_the_run_object_was_ended(default_run: Run, clean_env: Path) -> None:
    default_run.end()  # ended directly (as atexit or a with-block would)
    tracking.log_metric("x", 1.0)
    tracking.log_inputs(a=1)
    assert tracking.current_run() is not default_run
    assert default_run.dropped == 0


def test_log_metric_imported_before_init_still_logs(clean_env: Path) -> None:
    tracking.end()
    from incluster.tracking import log_metric as early

    early("x", 1.0, step=1)  # opens the default run
    assert tracking.log_metric == tracking.current_run().log_metric  # bound while open
    early("x", 2.0, step=2)
    tracking.end()
    assert tracking.log_metric is early  # unbound again: the next call opens a new run
    steps = [r.step for r in read_events(clean_env) if isinstance(r, events.Metric)]
    assert steps == [1, 2]
