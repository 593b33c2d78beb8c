"""Every example manifest runs to success on this machine, as the docs promise.

Each runs through `incluster run` (the product's local runner: same validation,
render and context as the operator), in its own namespace and on a free port so the
examples can run in parallel with the rest of the suite.
"""

from __future__ import annotations

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
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_locally(example, tmp_path):
    doc = yaml.safe_load(example.read_text())
    doc["metadata"]["namespace"] = f"ex-{uuid.uuid4().hex[:10]}"
    port = free_port()
    for replica in doc["spec"]["replicas"].values():
        replica["port"] = port
    manifest = tmp_path / example.name
    manifest.write_text(yaml.safe_dump(doc))
    outputs = tmp_path / "outputs"
    done = subprocess.run(
        [
            str(INCLUSTER),
            "run",
            str(manifest),
            "--outputs",
            str(outputs),
            "--workdir",
            str(ROOT),
            "--color",
            "never",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded" in done.stdout
    # Every replica wrote under the experiment's own outputs path, nowhere else.
    written = [p for p in outputs.rglob("*") if p.is_file() and ".incluster" not in p.parts]
    assert written, "the example wrote no outputs"
    assert all(doc["metadata"]["namespace"] in p.parts for p in written)
