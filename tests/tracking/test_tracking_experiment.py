"""Seed 000's Experiment: getters from the context, v0 logging calls into the run."""

from __future__ import annotations

import array
import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from incluster import Experiment, context, read_events, tracking
from incluster.tracking import events
from incluster.tracking.run import Run
from tracking_helpers import run_python


def test_getters_delegate_to_the_context(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = {"master": ["m:2222"], "worker": ["w0:2222", "w1:2222"]}
    monkeypatch.setenv("INCLUSTER_CLUSTER", json.dumps(cluster))
    monkeypatch.setenv("INCLUSTER_TASK_INFO", '{"type": "worker", "index": 1}')
    monkeypatch.setenv("INCLUSTER_EXPERIMENT_INFO", '{"experiment_name": "xp"}')
    monkeypatch.setenv("INCLUSTER_DECLARATIONS", '{"lr": 0.1}')
    monkeypatch.setenv("INCLUSTER_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("INCLUSTER_REFS_OUTPUTS_PATHS", '{"jobs": [], "experiments": ["/r"]}')
    monkeypatch.setenv("INCLUSTER_RUN_DATA_PATHS", '{"data1": "/data/1"}')
    monkeypatch.delenv("TF_CONFIG", raising=False)
    xp = Experiment()
    assert xp.get_cluster_def() == cluster
    assert xp.get_task_info() == {"type": "worker", "index": 1}
    assert xp.get_experiment_info() == {"experiment_name": "xp"}
    assert xp.get_declarations() == {"lr": 0.1}
    assert xp.get_log_level() == "DEBUG"
    assert xp.get_outputs_path() == str(clean_env)
    assert xp.get_outputs_refs_paths() == {"jobs": [], "experiments": ["/r"]}
    assert xp.get_data_paths() == {"data1": "/data/1"}
    assert xp.is_in_cluster() is True
    assert xp.is_distributed() is True
    tf = xp.get_tf_config(envvar="TF_CONFIG")
    assert tf["task"] == {"type": "worker", "index": 1}
    assert json.loads(os.environ["TF_CONFIG"]) == tf
    assert tf == context.get_tf_config()


def test_v0_logging_calls_round_trip(default_run: Run, clean_env: Path, tmp_path: Path) -> None:
    xp = Experiment()
    assert xp.run is default_run
    xp.log_params(lr=0.01, layers=3)
    xp.log_tags(["v0"])
    xp.log_metrics(step=1000, loss=0.01, accuracy=0.97)
    digest = xp.log_data_ref(data=b"X" * 100, data_name="dataset_X")
    tracking.end()
    got = list(read_events(clean_env))
    assert any(isinstance(r, events.Inputs) and r.values == {"lr": 0.01, "layers": 3} for r in got)
    assert any(isinstance(r, events.Tags) and r.tags == ["v0"] for r in got)
    metrics = {(r.name, r.value, r.step) for r in got if isinstance(r, events.Metric)}
    assert metrics == {("loss", 0.01, 1000), ("accuracy", 0.97, 1000)}
    refs = [r for r in got if isinstance(r, events.DataRef)]
    assert refs == [events.DataRef("master-0", "dataset_X", digest, refs[0].timestamp)]
    assert digest == "sha256:" + hashlib.sha256(b"X" * 100).hexdigest()


def test_log_output_and_log_outputs_copy_into_the_store(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    single = tmp_path / "model.bin"
    single.write_bytes(b"\x00\x01")
    xp = Experiment(run)
    ref = xp.log_output(single)
    refs = xp.log_outputs(src)
    out = Path(run.outputs_path)
    assert (out / "model.bin").read_bytes() == b"\x00\x01"
    assert (out / "a.txt").read_text() == "A"
    assert (out / "sub" / "b.txt").read_text() == "B"
    assert ref["path"] == "model.bin"
    assert ref["name"] == "model"
    assert sorted(r["path"] for r in refs) == ["a.txt", "sub/b.txt"]
    assert sorted(r["name"] for r in refs) == ["a.txt", "sub/b.txt"]
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".incluster-")]
    assert leftovers == []
    stored = [r for r in read_events(run.events_path) if isinstance(r, events.ArtifactRef)]
    assert {r.path for r in stored} == {"model.bin", "a.txt", "sub/b.txt"}


def test_log_output_replaces_atomically(run: Run, tmp_path: Path) -> None:
    """A reader holding the old file keeps reading the old content (rename, not rewrite)."""
    xp = Experiment(run)
    first = tmp_path / "m.txt"
    first.write_text("old")
    xp.log_output(first)
    stored = Path(run.outputs_path) / "m.txt"
    with open(stored) as reader:
        first.write_text("new")
        xp.log_output(first)
        assert reader.read() == "old"
    assert stored.read_text() == "new"


def test_log_output_rejects_missing_files(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file_path="):
        Experiment(run).log_output(tmp_path / "nope")
    with pytest.raises(ValueError, match="dir_path="):
        Experiment(run).log_outputs(tmp_path / "nope")


def test_data_hash_is_stable_across_processes_and_types(run: Run, tmp_path: Path) -> None:
    payload = b"0123456789" * 1000
    file = tmp_path / "data.bin"
    file.write_bytes(payload)
    by_bytes = run.log_data_ref(payload, "a")
    assert run.log_data_ref(bytearray(payload), "b") == by_bytes
    assert run.log_data_ref(file, "c") == by_bytes
    with open(file, "rb") as f:
        f.read(3)
        assert run.log_data_ref(f, "d") == "sha256:" + hashlib.sha256(payload[3:]).hexdigest()
        assert f.tell() == 3  # the caller's position is restored
    assert run.log_data_ref(io.BytesIO(payload), "e") == by_bytes
    assert run.log_data_ref(payload.decode(), "f") == by_bytes
    floats = array.array("d", [1.0, 2.0, 3.0])
    as_doubles = run.log_data_ref(floats, "g")
    same_bytes_other_type = memoryview(floats.tobytes())
    assert run.log_data_ref(same_bytes_other_type, "h") != as_doubles  # format matters
    proc = run_python(
        """
        import array, sys
        from incluster.tracking import hashing
        print(hashing.data_hash(array.array("d", [1.0, 2.0, 3.0])))
        """
    )
    assert proc.stdout.strip() == as_doubles


def test_pandas_objects_hash_by_content(run: Run) -> None:
    pd = pytest.importorskip("pandas")
    a = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert run.log_data_ref(a, "a") == run.log_data_ref(a.copy(), "b")
    assert run.log_data_ref(a, "a") != run.log_data_ref(a.assign(x=[1, 3]), "c")


def test_log_outputs_of_a_dir_already_in_the_store_records_in_place(run: Run) -> None:
    ckpt = Path(run.get_outputs_path("ckpt/epoch-1.pt"))
    ckpt.write_bytes(b"w")
    refs = Experiment(run).log_outputs(ckpt.parent)
    assert [r["path"] for r in refs] == ["ckpt/epoch-1.pt"]
    assert not (Path(run.outputs_path) / "epoch-1.pt").exists()
