"""Every example manifest runs to success on this machine, as the docs promise.

Each runs through `incluster run` (the product's local runner: same validation,
render and context as the operator), in its own namespace and on a free port so the
examples can run in parallel with the rest of the suite.
"""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INCLUSTER = Path(sys.executable).parent / "incluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_there_are_examples():
    assert len(EXAMPLES) >= 8


#: Python modules an example needs beyond the SDK: without them it is skipped, saying so.
NEEDS = {"04-pytorch-ddp.yaml": "torch", "05-jax.yaml": "jax"}
#: Examples that read an earlier run's outputs: that example runs first (same --outputs).
AFTER = {"08-outputs-refs.yaml": "01-single.yaml"}


def _incluster_run(example: Path, tmp_path: Path, namespace: str, *extra: str):
    doc = yaml.safe_load(example.read_text())
    doc["metadata"]["namespace"] = namespace
    port = free_port()
    for replica in doc["spec"]["replicas"].values():
        replica["port"] = port
    manifest = tmp_path / example.name
    manifest.write_text(yaml.safe_dump(doc))
    argv = [str(INCLUSTER), "run", str(manifest), "--outputs", str(tmp_path / "outputs")]
    argv += ["--workdir", str(ROOT), "--color", "never", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_locally(example, tmp_path):
    module = NEEDS.get(example.name)
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.skip(f"{example.name} needs {module}, which is not installed here")
    namespace = f"ex-{uuid.uuid4().hex[:10]}"
    extra: list[str] = []
    if example.name in AFTER:
        first = _incluster_run(ROOT / "examples" / AFTER[example.name], tmp_path, namespace)
        assert first.returncode == 0, first.stdout + first.stderr
    if example.name == "07-data.yaml":
        store = tmp_path / "mnist"
        store.mkdir()
        (store / "train.csv").write_text("1,2,3\n")
        extra = ["--data", f"mnist={store}"]
    done = _incluster_run(example, tmp_path, namespace, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded" in done.stdout
    # Every replica wrote under the experiment's own outputs path, nowhere else.
    outputs = tmp_path / "outputs"
    written = [p for p in outputs.rglob("*") if p.is_file() and ".incluster" not in p.parts]
    assert written, "the example wrote no outputs"
    assert all(namespace in p.parts for p in written)


def test_examples_are_numbered_and_name_their_image():
    """Numbered, one idea each, and each says which image it needs on a real cluster."""
    numbers = [int(p.name.split("-", 1)[0]) for p in EXAMPLES]
    assert numbers == list(range(1, len(EXAMPLES) + 1))
    for example in EXAMPLES:
        text = example.read_text()
        assert "Image on a real cluster" in text, example.name
        assert "python:3.11-slim" not in text, example.name
