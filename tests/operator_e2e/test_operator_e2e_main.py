"""``python -m incluster_operator`` refuses malformed settings before kopf starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from incluster_operator.settings import ENV_ADDRESSING

ROOT = Path(__file__).resolve().parents[2]


def test_a_malformed_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCLUSTER_OPERATOR_")}
    env[ENV_ADDRESSING] = "carrier-pigeon"
    env["KUBECONFIG"] = str(tmp_path / "absent")  # never read: the settings fail first
    result = subprocess.run(
        [sys.executable, "-m", "incluster_operator"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert ENV_ADDRESSING in result.stderr
    assert "'dns' or 'loopback'" in result.stderr
