"""One operator per test module on the session's API server; one namespace per test.

Starting kopf costs about half a second, so the operator is shared by a module's tests,
which stay independent through namespaces of their own (fault injection and request
counts filter on them). A module that needs the emulator names why in EMULATOR_BECAUSE.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from incluster_operator import k8s
from incluster_operator.settings import Settings, VolumeSource
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
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The API server with the Experiment CRD, and the operator watching every namespace.

    The session's real API server, unless the module says in ``EMULATOR_BECAUSE`` why it
    needs the emulator (fault injection, cut watches).
    """
    emulator = bool(getattr(request.module, "EMULATOR_BECAUSE", ""))
    with cluster(tmp_path_factory.mktemp("cluster"), emulator=emulator) as handle:
        # Server-side apply: modules in parallel may install the same CRD at once (the
        # emulator serves no server-side apply, and has a server per module anyway).
        ssa = () if handle.is_emulator else ("--server-side", "--force-conflicts")
        handle.kubectl("apply", *ssa, "-f", str(CRD))
        client = handle.api_client()
        wait_for(lambda: _crd_served(client), message="the Experiment CRD to be served")
        configuration = k8s.load_configuration({"KUBECONFIG": str(handle.kubeconfig)})
        # On a shared API server each module's operator watches only its own namespaces
        # (a kopf glob), so parallel modules never reconcile each other's experiments.
        prefix = f"t{secrets.token_hex(3)}"
        # A fixed report API port, so that a restarted operator is where the context says.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = Settings(
            namespaces=None if handle.is_emulator else (f"{prefix}-*",),
            # The data store examples/07-data.yaml names, as an admin would configure it.
            data_stores={"mnist": VolumeSource(claim="mnist")},
            report_listen=f"127.0.0.1:{port}",
        )
        operator = OperatorThread(settings, configuration).start()
        try:
            yield Running(cluster=handle, operator=operator, client=client, prefix=prefix)
        finally:
            operator.stop()
            client.close()


@pytest.fixture
def kube(running: Running) -> Kube:
    """A fresh namespace on the module's API server, seen through the real client."""
    namespace = new_namespace(running.cluster, running.client, running.prefix)
    return Kube(cluster=running.cluster, namespace=namespace, client=running.client)
