"""examples/Dockerfile (the image of real-cluster e2e runs), checked with Docker's parser."""

from __future__ import annotations

from pathlib import Path

import dockerfile
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def commands():
    return {c.cmd: c.value for c in dockerfile.parse_file(str(EXAMPLES / "Dockerfile"))}


def test_image_runs_as_a_numeric_non_root_user():
    user = commands()["USER"][0].split(":")
    assert all(part.isdigit() and int(part) > 0 for part in user)


def test_image_holds_the_scripts_the_manifests_run():
    cmds = commands()
    assert cmds["WORKDIR"] == ("/app",)
    assert cmds["COPY"][-2:] == ("*.py", "examples/")
    for manifest in EXAMPLES.glob("*.yaml"):
        doc = yaml.safe_load(manifest.read_text())
        for replica in doc["spec"]["replicas"].values():
            for container in replica["template"]["spec"]["containers"]:
                script = container["command"][-1]
                assert script.startswith("examples/")
                assert (EXAMPLES.parent / script).is_file()
    assert (EXAMPLES.parent / cmds["CMD"][-1]).is_file()
