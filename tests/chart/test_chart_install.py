"""The rendered chart installs with `kubectl apply`, and the operator starts from its Deployment.

Runs on the devcluster emulator, or on a real cluster when INCLUSTER_TEST_KUBECONFIG is set.
The operator is started as a local process with exactly the Deployment's command and env
(there is no kubelet to run the image here); its liveness endpoint must come up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from devcluster.testing import Cluster
from tests.chart.conftest import operator_process
from tests.chart.manifests import first_experiment, notes, rbac_grants, render_manifests

pytestmark = pytest.mark.cluster


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
    with operator_process(manifests, values, cluster.kubeconfig, tmp_path):
        pass  # healthy: operator_process waited for /healthz
