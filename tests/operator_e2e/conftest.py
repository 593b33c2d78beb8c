"""One emulator and one operator per test module; one namespace per test.

Starting kopf costs about half a second and the emulator's fixture is per test, so the
operator is shared by a module's tests, which stay independent through namespaces of
their own (fault injection and request counts filter on them).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from incluster_operator import k8s
from incluster_operator.settings import Settings
from operator_e2e_harness import Kube, OperatorThread, Running, new_namespace

from devcluster.testing import cluster, wait_for

CRD = Path(__file__).resolve().parents[2] / "crds" / "experiments.incluster.dev.yaml"


def _crd_served(client: Any) -> bool:
    try:
        kubernetes.client.CustomObjectsApi(client).list_cluster_custom_object(
            "incluster.dev", "v1alpha1", "experiments"
        )
    except kubernetes.client.ApiException:
        return False
    return True


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The emulator with the Experiment CRD, and the operator watching every namespace."""
    with cluster(tmp_path_factory.mktemp("cluster")) as handle:
        handle.kubectl("apply", "-f", str(CRD))
        client = handle.api_client()
        wait_for(lambda: _crd_served(client), message="the Experiment CRD to be served")
        configuration = k8s.load_configuration({"KUBECONFIG": str(handle.kubeconfig)})
        # A fixed port, so that a restarted operator is where the context says it is.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = Settings(report_listen=f"127.0.0.1:{port}")
        operator = OperatorThread(settings, configuration).start()
        try:
            yield Running(cluster=handle, operator=operator, client=client)
        finally:
            operator.stop()
            client.close()


@pytest.fixture
def kube(running: Running) -> Kube:
    """A fresh namespace on the shared emulator, seen through the real client."""
    namespace = new_namespace(running.cluster, running.client)
    return Kube(cluster=running.cluster, namespace=namespace, client=running.client)
