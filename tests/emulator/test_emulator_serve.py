"""`python -m devcluster serve` writes its kubeconfig once listening; kubectl then works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from devcluster.testing import kubectl_binary, wait_for


def test_serve_on_a_free_port_writes_a_working_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kube" / "config"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devcluster",
            "serve",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = int(re.search(r"port (\d+)", line).group(1))  # type: ignore[union-attr]
        wait_for(kubeconfig.exists, message="the kubeconfig")
        assert f":{port}" in kubeconfig.read_text()
        result = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(kubeconfig), "get", "namespaces", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert {"namespace/default", "namespace/kube-system"} <= set(result.stdout.split())
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_serve_rejects_a_bad_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devcluster", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--port must be within 0..65535" in result.stderr
