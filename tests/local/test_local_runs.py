"""Every `incluster run` is its own run: its own id and directory, never an earlier one's."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import yaml
from incluster import cli
from incluster.tracking.runs import RUN_ID, list_runs

#: Logs five points of `loss` and prints its run id (the experiment info's uuid).
SCRIPT = (
    "import json, os; from incluster import tracking;"
    "info = json.loads(os.environ['INCLUSTER_EXPERIMENT_INFO']);"
    "print('uuid', info['experiment_uuid'], tracking.get_outputs_path());"
    "[tracking.log_metric('loss', 1.0 / (s + 1), step=s) for s in range(5)]"
)


def _manifest(tmp_path: Path, name: str = "twice", **spec: object) -> Path:
    doc = {
        "apiVersion": "incluster.dev/v1alpha1",
        "kind": "Experiment",
        # A fresh namespace: loopback addresses derive from namespace/name.
        "metadata": {"name": name, "namespace": f"t-{uuid.uuid4().hex[:10]}"},
        "spec": {
            "replicas": {
                "master": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "x",
                                    "command": [sys.executable, "-c", SCRIPT],
                                }
                            ]
                        }
                    }
                }
            },
            **spec,
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(path: Path, out: Path) -> int:
    return cli.main(["run", str(path), "--outputs", str(out), "--color", "never"])


def test_two_runs_of_one_file_are_two_runs(tmp_path, capsys):
    path = _manifest(tmp_path)
    namespace = yaml.safe_load(path.read_text())["metadata"]["namespace"]
    out = tmp_path / "out"
    assert _run(path, out) == 0, capsys.readouterr()
    first = capsys.readouterr().out
    experiment = out / namespace / namespace / "twice"  # project defaults to the namespace
    (run1,) = experiment.iterdir()
    assert RUN_ID.match(run1.name)
    # The run id is the experiment info's uuid, and get_outputs_path() is the run's dir.
    assert f"master-0 | uuid {run1.name} {run1}" in first
    before = {p: p.read_bytes() for p in run1.rglob("*") if p.is_file()}

    assert _run(path, out) == 0
    second = capsys.readouterr().out
    (run2,) = [d for d in experiment.iterdir() if d != run1]
    assert f"master-0 | uuid {run2.name} {run2}" in second
    # The first run's files are byte-for-byte what they were.
    assert {p: p.read_bytes() for p in run1.rglob("*") if p.is_file()} == before
    assert [r.id for r in list_runs(experiment)] == [run1.name, run2.name]

    # `incluster metrics` lists both and shows the latest: 5 points, not 10.
    assert cli.main(["metrics", str(experiment)]) == 0
    shown = capsys.readouterr().out
    assert run1.name in shown
    assert run2.name in shown
    assert f"showing run {run2.name}, the latest" in shown
    (row,) = [line for line in shown.splitlines() if line.startswith("master-0")]
    assert row.split()[-1] == "5"
    assert cli.main(["metrics", str(experiment), "--run", run1.name[:8]]) == 0
    assert f"showing run {run1.name}, chosen with --run" in capsys.readouterr().out


def test_unknown_run_id_is_an_error_listing_the_runs(tmp_path, capsys):
    path = _manifest(tmp_path)
    out = tmp_path / "out"
    assert _run(path, out) == 0
    capsys.readouterr()
    namespace = yaml.safe_load(path.read_text())["metadata"]["namespace"]
    experiment = out / namespace / namespace / "twice"
    assert cli.main(["metrics", str(experiment), "--run", "ffff"]) == 2
    err = capsys.readouterr().err
    assert "run 'ffff' matches no run; the runs are:" in err


def test_an_older_layout_is_left_alone_and_shown_as_legacy(tmp_path, capsys):
    path = _manifest(tmp_path)
    namespace = yaml.safe_load(path.read_text())["metadata"]["namespace"]
    out = tmp_path / "out"
    experiment = out / namespace / namespace / "twice"
    old = experiment / "events" / "master-0.jsonl"
    old.parent.mkdir(parents=True)
    line = b'{"k":"metric","n":"loss","v":7.0,"s":0,"t":1000}\n'
    old.write_bytes(line)
    assert _run(path, out) == 0
    assert "is from the older layout (no run level); left as it is" in capsys.readouterr().out
    assert old.read_bytes() == line
    assert cli.main(["metrics", str(experiment), "--run", "legacy"]) == 0
    shown = capsys.readouterr().out
    assert "showing run legacy (the older layout" in shown
    assert "7" in next(line for line in shown.splitlines() if line.startswith("master-0"))


def test_a_ref_mounts_the_latest_run_of_the_referenced_experiment(tmp_path, capsys):
    out = tmp_path / "out"
    first = _manifest(tmp_path, "first", project="p")
    namespace = yaml.safe_load(first.read_text())["metadata"]["namespace"]
    assert _run(first, out) == 0
    assert _run(first, out) == 0
    runs = list_runs(out / namespace / "p" / "first")
    assert len(runs) == 2
    reader = (
        "from incluster import Experiment; import os;"
        "(ref,) = Experiment.get_outputs_refs_paths()['experiments'];"
        "print('ref', ref, sorted(os.listdir(ref)))"
    )
    second = _manifest(tmp_path, "second", project="p", outputsRefs={"experiments": ["first"]})
    doc = yaml.safe_load(second.read_text())
    doc["metadata"]["namespace"] = namespace
    container = doc["spec"]["replicas"]["master"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c", reader]
    second.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert _run(second, out) == 0
    printed = capsys.readouterr().out
    assert f"master-0 | ref {runs[-1].path} ['events']" in printed


def test_a_ref_without_any_run_is_refused(tmp_path, capsys):
    path = _manifest(tmp_path, "second", outputsRefs={"experiments": ["nothing"]})
    assert _run(path, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "spec.outputsRefs.experiments[0]: no run of 'nothing' under" in err


@pytest.mark.parametrize("missing", ["project"])
def test_project_defaults_to_the_namespace(tmp_path, capsys, missing):
    path = _manifest(tmp_path)
    doc = yaml.safe_load(path.read_text())
    assert missing not in doc["spec"]
    assert _run(path, tmp_path / "out") == 0, capsys.readouterr()


def test_a_run_id_that_exists_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    from incluster_operator.local import runner

    taken = uuid.UUID("0b5e0c1e-7c44-4f4b-9d1c-2a0f3f6f0c11")
    monkeypatch.setattr(runner.uuid, "uuid4", lambda: taken)
    path = _manifest(tmp_path)
    namespace = yaml.safe_load(path.read_text())["metadata"]["namespace"]
    out = tmp_path / "out"
    existing = out / namespace / namespace / "twice" / str(taken)
    existing.mkdir(parents=True)
    (existing / "keep.txt").write_text("mine")
    assert _run(path, out) == 2
    assert f"run id {taken} is taken; nothing was written" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert not (out / ".incluster").exists()
