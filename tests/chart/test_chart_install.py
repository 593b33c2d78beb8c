"""The rendered chart installs with `kubectl apply`, and the operator starts from its Deployment.

Runs on the devcluster emulator, or on a real cluster when INCLUSTER_TEST_KUBECONFIG is set.
The operator is started as a local process with exactly the Deployment's command and env
(there is no kubelet to run the image here); its liveness endpoint must come up.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from devcluster.testing import Cluster, wait_for
from tests.chart.manifests import (
    first_experiment,
    install_yaml,
    notes,
    one,
    operator_invocation,
    rbac_grants,
    render_manifests,
)

pytestmark = pytest.mark.cluster


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
    cluster.kubectl("apply", "-f", str(stream))
    try:
        yield release, values
    finally:
        # Namespaced objects go with the test's namespace; the CRD is shared and stays.
        name = f"{release}-incluster"
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found")


def kubectl_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_kubectl_apply_installs_every_rendered_object(
    cluster: Cluster,
    chart: helm_python.Chart,
    installed: tuple[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    release, values = installed
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/experiments.incluster.dev", "--timeout=30s"
    )
    rendered = render_manifests(chart, values, release=release, namespace=cluster.namespace)
    for manifest in rendered:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        stored = kubectl_json(cluster, kind.lower(), name)
        assert stored["metadata"]["name"] == name
        if "rules" in manifest:
            assert rbac_grants(stored["rules"]) == rbac_grants(manifest["rules"])
    deployment = kubectl_json(cluster, "deployment", f"{release}-incluster")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The admin's first Experiment, from NOTES, is accepted by the installed CRD.
    _, experiment = first_experiment(notes(chart, values))
    (tmp_path / "hello.yaml").write_text(yaml.safe_dump(experiment))
    cluster.kubectl("apply", "-f", str(tmp_path / "hello.yaml"))
    project = cluster.kubectl("get", "experiment", "hello", "-o", "jsonpath={.spec.project}")
    assert project.stdout == "first"


def test_operator_starts_from_the_deployments_command_and_env(
    cluster: Cluster,
    chart: helm_python.Chart,
    installed: tuple[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    release, values = installed
    manifests = render_manifests(chart, values, release=release, namespace=cluster.namespace)
    argv, env = operator_invocation(manifests)
    kopf = Path(sys.executable).with_name(argv[0])
    # Play the kubelet: mount the chart's generated TLS Secret where the Deployment does.
    secret = one(manifests, "Secret")
    tls = tmp_path / "tls"
    tls.mkdir()
    for key, value in secret["data"].items():
        (tls / key).write_bytes(base64.b64decode(value))
    free = free_port()
    process_env = {
        **env,
        "INCLUSTER_OPERATOR_REPORT_TLS_DIR": str(tls),
        "INCLUSTER_OPERATOR_REPORT_LISTEN": f"127.0.0.1:{free}",
        "PATH": os.environ.get("PATH", ""),
        "KUBECONFIG": str(cluster.kubeconfig),
        "HOME": str(tmp_path),
    }
    url = f"http://127.0.0.1:{values['health']['port']}/healthz"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the operator exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    log = tmp_path / "operator.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(kopf), *argv[1:]], env=process_env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_for(healthy, timeout=60, interval=0.1, message="the operator's /healthz")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{log.read_text()}") from None
        finally:
            process.terminate()
            process.wait(timeout=30)
