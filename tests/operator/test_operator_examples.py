"""The shipped example Experiments are valid and render; the script reads a real context."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from incluster import contract
from incluster_operator.api import validate
from incluster_operator.render import ExperimentMeta, render_all
from incluster_operator.settings import Settings, VolumeSource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def load(path):
    (doc,) = list(yaml.safe_load_all(path.read_text()))
    assert doc["apiVersion"] == "incluster.dev/v1alpha1"
    assert doc["kind"] == "Experiment"
    return doc


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_validates_and_renders(path):
    doc = load(path)
    name = doc["metadata"]["name"]
    # The data stores an example names, as a platform admin would configure them.
    stores = {store: VolumeSource(claim=store) for store in doc["spec"].get("data", [])}
    settings = Settings(data_stores=stores)
    spec = validate(doc["spec"], name, settings)
    children = render_all(spec, ExperimentMeta(name, "default", "uid-1"), settings)
    assert len(children.pods) == sum(r.replicas for r in spec.replicas.values())


def test_the_distributed_example_has_master_two_workers_and_one_ps():
    doc = load(ROOT / "examples" / "02-distributed.yaml")
    spec = validate(doc["spec"], "distributed", Settings())
    counts = {t: r.replicas for t, r in spec.replicas.items()}
    assert counts == {"master": 1, "worker": 2, "ps": 1}


def test_the_example_script_reports_the_rendered_context(tmp_path):
    """Run show_context.py with a rendered worker's env and files, as the pod runner would."""
    doc = load(ROOT / "examples" / "02-distributed.yaml")
    settings = Settings(
        context_dir=str(tmp_path / "ctx"),
        outputs_root=str(tmp_path / "out"),
        inline_env_max_bytes=0,
    )
    spec = validate(doc["spec"], "distributed", settings)
    children = render_all(spec, ExperimentMeta("distributed", "default", "uid-1"), settings)
    (tmp_path / "ctx").mkdir()
    for name, text in children.config_map["data"].items():
        (tmp_path / "ctx" / name).write_text(text)
    (pod,) = [p for p in children.pods if p["metadata"]["name"] == "distributed-worker-1"]
    container = pod["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(contract.ENV_PREFIX)}
    env.pop(contract.ENV_TF_CONFIG, None)
    env.update({e["name"]: e["value"] for e in container["env"]})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "sdk"), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, *container["command"][1:]],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    outputs = tmp_path / "out" / "default" / "examples" / "tf" / "distributed" / "uid-1"
    record = json.loads((outputs / "context-worker-1.json").read_text())
    assert record["task"] == {"type": "worker", "index": 1}
    assert record["tf_config"]["task"] == {"type": "worker", "index": 1}
    assert sorted(record["cluster"]) == ["master", "ps", "worker"]
    assert record["declarations"] == {"lr": 0.001, "steps": 100}
