"""Fixtures for the chart's tests: the chart rendered by Helm's own engine (helm-python-sdk).

Rendering goes through the same Go code as `helm install`, values.schema.json included, so
a value the schema rejects fails here exactly as it would for an admin.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import helm_python
import pytest

from devcluster.testing import Cluster, wait_for
from tests.chart.manifests import (
    CHART_DIR,
    Render,
    install_yaml,
    one,
    operator_invocation,
    render_manifests,
)


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Render:
    def _render(values: dict[str, object] | None = None) -> list[dict[str, object]]:
        return render_manifests(chart, values)

    return _render


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def installed(
    cluster: Cluster, chart: helm_python.Chart, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The chart applied into the test's namespace, watching only that namespace."""
    release = f"ic-{cluster.namespace}"
    values = {
        "watch": {"allNamespaces": False, "namespaces": [cluster.namespace]},
        "health": {"port": free_port()},
    }
    stream = tmp_path / "install.yaml"
    stream.write_text(install_yaml(chart, values, release=release, namespace=cluster.namespace))
    # Server-side apply on a real server: parallel tests may install the shared CRD at once.
    ssa = () if cluster.is_emulator else ("--server-side", "--force-conflicts")
    cluster.kubectl("apply", *ssa, "-f", str(stream))
    try:
        yield release, values
    finally:
        # Namespaced objects go with the test's namespace; the CRD is shared and stays.
        name = f"{release}-incluster"
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found")


@contextmanager
def operator_process(
    manifests: list[dict[str, Any]],
    values: dict[str, Any],
    kubeconfig: Path,
    tmp_path: Path,
    report_port: int = 0,
) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as a local process with exactly the Deployment's command and env.

    There is no kubelet to run the image here; ``kubeconfig`` says whose rights it has.
    Yields once its /healthz answers; stops it afterwards.
    """
    argv, env = operator_invocation(manifests)
    kopf = Path(sys.executable).with_name(argv[0])
    # Play the kubelet: mount the chart's generated TLS Secret where the Deployment does.
    tls = tmp_path / "report-tls"
    tls.mkdir(exist_ok=True)
    for key, value in one(manifests, "Secret")["data"].items():
        (tls / key).write_bytes(base64.b64decode(value))
    if not report_port:
        with socket.socket() as probe:  # the report API on a free loopback port
            probe.bind(("127.0.0.1", 0))
            report_port = probe.getsockname()[1]
    listen = f"127.0.0.1:{report_port}"
    process_env = {
        **env,
        "INCLUSTER_OPERATOR_REPORT_TLS_DIR": str(tls),
        "INCLUSTER_OPERATOR_REPORT_LISTEN": listen,
        "PATH": os.environ.get("PATH", ""),
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(tmp_path),
    }
    url = f"http://127.0.0.1:{values['health']['port']}/healthz"
    log = tmp_path / "operator.log"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the operator exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    with log.open("w") as out:
        process = subprocess.Popen(
            [str(kopf), *argv[1:]], env=process_env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            try:
                wait_for(healthy, timeout=60, interval=0.1, message="the operator's /healthz")
            except AssertionError as e:
                raise AssertionError(f"{e}\n{log.read_text()}") from None
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)
