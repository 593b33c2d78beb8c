"""One training script, unchanged, in a fresh process: without context and with one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from incluster import contract

from tests.sdk.mounts import Mount

SCRIPT = """
import json, os
from incluster import context
print(json.dumps({
    "in_cluster": context.is_in_cluster(),
    "distributed": context.is_distributed(),
    "task": context.get_task_info(),
    "cluster": context.get_cluster_def(),
    "tf_config": context.get_tf_config(envvar="TF_CONFIG"),
    "exported": os.environ.get("TF_CONFIG"),
    "declarations": context.get_declarations(),
    "outputs": context.get_outputs_path(),
    "log_level": context.get_log_level(),
}))
"""


def run(env: dict[str, str], cwd: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def base_env() -> dict[str, str]:
    """The test process's env without any context variable (the fixture removed them)."""
    return dict(os.environ)


def test_without_context(tmp_path: Path) -> None:
    assert run(base_env(), tmp_path) == {
        "in_cluster": False,
        "distributed": False,
        "task": {"type": "master", "index": 0},
        "cluster": {},
        "tf_config": {},
        "exported": None,
        "declarations": {},
        "outputs": str(tmp_path / "outputs" / "local"),
        "log_level": None,
    }


def test_with_a_mounted_context(tmp_path: Path, mount: Mount) -> None:
    cluster = {"chief": ["xp-chief-0.xp:2222"], "worker": ["xp-worker-0.xp:2222"]}
    mount.write(
        {contract.KEY_DECLARATIONS: {"lr": 0.1}, contract.KEY_OUTPUTS_PATH: "/outputs/ns/p/xp"},
        cluster=cluster,
    )
    env = base_env() | {contract.ENV_TASK_INFO: '{"type": "worker", "index": 0}'}
    result = run(env, tmp_path)
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}, "environment": "cloud"}
    assert result == {
        "in_cluster": True,
        "distributed": True,
        "task": {"type": "worker", "index": 0},
        "cluster": cluster,
        "tf_config": tf_config,
        "exported": json.dumps(tf_config, separators=(",", ":")),
        "declarations": {"lr": 0.1},
        "outputs": "/outputs/ns/p/xp",
        "log_level": None,
    }
