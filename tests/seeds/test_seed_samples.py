"""Both seed pages' samples, import lines changed, in a 1 master + 2 workers + 1 ps run.

The run goes through ``incluster run`` (the operator's own render, the replicas as local
processes) with the outputs in a real local S3 server and the seed's ``POLYAXON_*``
names switched on, so one test checks what a Polyaxon user moving over would see: every
documented getter and env var, the tracked records, and the outputs in the store.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from incluster import cli, read_events
from incluster.tracking import events

from devcluster import s3server
from tests.local.helpers import ROOT, free_port
from tests.objectstore.conftest import new_bucket, store_fs

SAMPLES = Path(__file__).with_name("seed_samples.py")
REPLICAS = {"master": 1, "worker": 2, "ps": 1}
DECLARATIONS = {"lr": 0.01, "batch_size": 64}


@pytest.fixture(scope="module")
def s3() -> Any:
    server = s3server.start()
    yield server
    server.stop()


def _manifest(tmp_path: Path, namespace: str, port: int) -> Path:
    done = tmp_path / "done"
    done.mkdir()
    harness_env = [
        {"name": "SEED_DONE_DIR", "value": str(done)},
        {"name": "SEED_REPLICAS", "value": str(sum(REPLICAS.values()))},
    ]
    container = {
        "name": "main",
        "image": "python:3.11",
        "command": ["python", str(SAMPLES)],
        "env": harness_env,
    }
    template = {"spec": {"containers": [container]}}
    doc = {
        "apiVersion": "incluster.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "seeds", "namespace": namespace},
        "spec": {
            "project": "mnist",
            "declarations": DECLARATIONS,
            "logLevel": "INFO",
            "polyaxonEnv": True,
            "data": ["data1"],
            "outputsRefs": {"experiments": ["xp0"]},
            "replicas": {
                kind: {"replicas": n, "port": port, "template": template}
                for kind, n in REPLICAS.items()
            },
            "runPolicy": {"backoffLimit": 0},
        },
    }
    path = tmp_path / "seeds.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _referenced(tmp_path: Path, namespace: str) -> Path:
    """Experiment ``xp0``, which the seeds' run names in its outputs refs."""
    container = {"name": "main", "image": "python:3.11", "command": ["python", "-c", "pass"]}
    doc = {
        "apiVersion": "incluster.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "xp0", "namespace": namespace},
        "spec": {
            "project": "mnist",
            "replicas": {
                "master": {"replicas": 1, "template": {"spec": {"containers": [container]}}}
            },
        },
    }
    path = tmp_path / "xp0.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_both_seed_pages_run_unchanged_but_for_their_imports(
    s3: s3server.S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in s3server.AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3server.client_env(s3.endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = new_bucket(s3.endpoint)
    root_url = f"s3://{bucket}/team-store"
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    data1 = tmp_path / "data1"
    data1.mkdir()
    monkeypatch.chdir(tmp_path)  # the local staging copy goes to ./outputs
    # The referenced experiment ran before on this machine: refs resolve to its latest run.
    code = cli.main(["run", str(_referenced(tmp_path, namespace)), "--outputs", root_url])
    assert code == 0, capsys.readouterr().err
    (xp0_run,) = [p.name for p in (tmp_path / "outputs" / namespace / "mnist" / "xp0").iterdir()]
    code = cli.main(
        [
            "run",
            str(_manifest(tmp_path, namespace, free_port())),
            "--outputs",
            root_url,
            "--data",
            f"data1={data1}",
            "--workdir",
            str(ROOT),
            "--color",
            "never",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err

    (run,) = [p.name for p in (tmp_path / "outputs" / namespace / "mnist" / "seeds").iterdir()]
    url = f"{root_url}/{namespace}/mnist/seeds/{run}"
    fs = store_fs()
    replicas = [(kind, i) for kind, n in REPLICAS.items() for i in range(n)]
    cluster: dict[str, list[str]] | None = None
    for kind, index in replicas:
        report = json.loads(fs.cat(f"{url}/report-{kind}-{index}.json"))
        env = report["env"]
        # seed 000's getters, each with its POLYAXON_ env var holding the same value
        assert report["get_task_info"] == {"type": kind, "index": index}
        assert json.loads(env["POLYAXON_TASK_INFO"]) == report["get_task_info"]
        assert report["get_declarations"] == DECLARATIONS
        assert json.loads(env["POLYAXON_DECLARATIONS"]) == DECLARATIONS
        assert report["get_log_level"] == env["POLYAXON_LOG_LEVEL"] == "INFO"
        outputs = report["get_outputs_path"]
        assert env["POLYAXON_RUN_OUTPUTS_PATH"] == outputs
        staged = tmp_path / "outputs" / namespace / "mnist" / "seeds" / run  # the pod's volume
        assert Path(outputs).resolve() == staged.resolve()
        refs = {"jobs": [], "experiments": [f"{root_url}/{namespace}/mnist/xp0/{xp0_run}"]}
        assert report["get_outputs_refs_paths"] == refs
        assert json.loads(env["POLYAXON_REFS_OUTPUTS_PATHS"]) == refs
        assert list(report["get_data_paths"]) == ["data1"]
        assert Path(report["get_data_paths"]["data1"]).resolve() == data1.resolve()
        assert json.loads(env["POLYAXON_RUN_DATA_PATHS"]) == report["get_data_paths"]
        info = report["get_experiment_info"]
        assert (info["experiment_name"], info["project_name"]) == ("seeds", "mnist")
        assert json.loads(env["POLYAXON_EXPERIMENT_INFO"]) == info
        assert {k: len(v) for k, v in report["get_cluster_def"].items()} == REPLICAS
        assert json.loads(env["POLYAXON_CLUSTER"]) == report["get_cluster_def"]
        cluster = cluster or report["get_cluster_def"]
        assert report["get_cluster_def"] == cluster  # one cluster, seen alike by all
        tf = report["get_tf_config"]
        assert tf["cluster"] == cluster
        assert tf["task"] == {"type": kind, "index": index}
        assert json.loads(env["TF_CONFIG_FROM_GETTER"]) == tf  # get_tf_config(envvar=)
        assert report["client"]

        # seed 000's "cloud storage" calls put the files in the store
        assert fs.cat(f"{url}/model-{kind}-{index}.h5") == b"weights"
        assert fs.cat(f"{url}/epoch-1/state.bin") == b"state"

    # every replica's records, read back from the store
    by_source: dict[str, list[events.Event]] = {}
    for record in read_events(url):
        by_source.setdefault(record.source, []).append(record)
    assert sorted(by_source) == sorted(f"{k}-{i}" for k, i in replicas)
    for records in by_source.values():
        metrics = {m.name: m for m in records if isinstance(m, events.Metric)}
        assert set(metrics) == {
            "accuracy_mean",
            "accuracy_std",
            "loss",
            "accuracy",
            "metric1",
            "metric2",
            "metric3",
        }
        assert metrics["loss"].step == 1000
        data = {d.name for d in records if isinstance(d, events.DataRef)}
        assert data == {"dataset_X", "dataset_y"}
        artifacts = {a.name: a for a in records if isinstance(a, events.ArtifactRef)}
        assert artifacts["test"].kind == "file"
        assert artifacts["my-csv"].kind == "csv"
        assert artifacts["my-csv"].url == f"{url}/file.csv"
        assert [t.tags for t in records if isinstance(t, events.Tags)] == [["foo", "bar"]]
        assert isinstance(records[-1], events.RunEnded)
    assert fs.cat(f"{url}/file.csv") == b"Artifact content."
