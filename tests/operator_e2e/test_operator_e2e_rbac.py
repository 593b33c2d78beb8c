"""The chart's RBAC covers every request the operator really sends.

A module of its own, so the emulator's access log holds only this scenario: an experiment
through creation, a recreated pod, success and TTL deletion. The test reads state
in-process (not over HTTP) and its only API writes (creating the Experiment, playing the
kubelet) are left out of the comparison. Exact both ways: every request is granted, and
every granted (group, resource, verb) was sent, so the chart holds no unused right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
from incluster import contract
from incluster.client import Client
from operator_e2e_harness import Kube, Running, experiment, pod_status, replica
from report_helpers import pod_context, report_url

from devcluster.testing import wait_for
from tests.chart.manifests import (
    CHART_DIR,
    UNEXERCISED,
    of_kind,
    rbac_grants,
    render_manifests,
)

pytestmark = [pytest.mark.cluster, pytest.mark.emulator]
#: Real RBAC enforcement of the same rules: tests/chart/test_chart_rbac_real.py.
EMULATOR_BECAUSE = "compares the rules with the emulator's log of every request, reads included"

EXPERIMENTS = "incluster.dev/v1alpha1/experiments"
#: This test's own requests: the user creating the Experiment, the kubelet reporting pods
#: and minting the pod's projected token; the module's fixture applying the CRD with kubectl
#: (a get, then a create); the namespace helper waiting for the default ServiceAccount.
TEST_WRITES = {
    ("", "serviceaccounts", "get"),
    ("", "serviceaccounts/token", "create"),
    ("incluster.dev", "experiments", "create"),
    ("", "pods/status", "patch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "create"),
}
#: Requests without a namespace that the operator sends: watches across namespaces, kopf's
#: CRD watch, and the report API's TokenReviews.
CLUSTER_WIDE = ("pods", "experiments", "customresourcedefinitions", "tokenreviews")


def _stored(kube: Kube, resource: str, name: str) -> dict[str, Any] | None:
    emulator = kube.cluster.emulator
    found: dict[str, Any] | None = kube.cluster.call(
        lambda: emulator.stored(resource, kube.namespace, name)
    )
    return found


def _phase(kube: Kube, name: str) -> str | None:
    found = _stored(kube, "incluster.dev/v1alpha1/experiments", name)
    return ((found or {}).get("status") or {}).get("phase")


def _pod_uid(kube: Kube, name: str) -> str | None:
    found = _stored(kube, "v1/pods", name)
    return (found or {}).get("metadata", {}).get("uid")


def _kubelet(kube: Kube, pod: str, phase: str, exit_code: int | None = None) -> None:
    kube.core.patch_namespaced_pod_status(
        pod, kube.namespace, {"status": pod_status(phase, exit_code)}, _preload_content=False
    )


def test_every_request_of_the_operator_is_granted_by_the_chart(
    kube: Kube, running: Running, tmp_path: Path
) -> None:
    kube.create(
        experiment(
            "rb",
            {"master": replica(), "worker": replica(1, restart_policy="ExitCode")},
            ttlSecondsAfterFinished=1,
        )
    )
    first = wait_for(lambda: _pod_uid(kube, "rb-worker-0"), message="worker pod created")
    wait_for(lambda: _phase(kube, "rb") == "Pending", message="status written")
    with running.operator.stopped():
        pass  # a restart: the new loop adopts the Service and ConfigMap (409, then get)
    # The master reports its summary: a TokenReview, a pod read, a status write.
    directory = pod_context(kube, "rb", "rb-master-0", tmp_path / "context")
    Client(
        base_url=report_url(directory),
        token_path=directory / contract.DIR_TOKEN / contract.FILE_TOKEN,
        ca_path=directory / contract.FILE_REPORT_CA,
    ).report_tracking({"updatedAt": "2026-01-01T00:00:00Z"})
    wait_for(
        lambda: "tracking" in ((_stored(kube, EXPERIMENTS, "rb") or {}).get("status") or {}),
        message="the summary folded into the status",
    )
    _kubelet(kube, "rb-worker-0", "Failed", exit_code=137)
    wait_for(lambda: _pod_uid(kube, "rb-worker-0") not in (None, first), message="worker recreated")
    _kubelet(kube, "rb-worker-0", "Succeeded")
    _kubelet(kube, "rb-master-0", "Succeeded")
    wait_for(
        lambda: _stored(kube, "incluster.dev/v1alpha1/experiments", "rb") is None,
        timeout=20,
        message="experiment deleted by its TTL",
    )

    log = kube.cluster.call(lambda: dict(kube.cluster.emulator.access_log))
    sent = {
        (access.group, access.resource, access.verb)
        for access in log
        if access.namespace == kube.namespace
        or (access.namespace is None and access.resource in CLUSTER_WIDE)
    }
    sent -= TEST_WRITES
    assert ("incluster.dev", "experiments", "delete") in sent  # the scenario reached TTL
    manifests = render_manifests(helm_python.Chart.load(str(CHART_DIR)))
    granted = set().union(
        *(rbac_grants(role["rules"]) for role in of_kind(manifests, "ClusterRole"))
    )
    assert sent - granted == set(), "requests the chart's ClusterRole does not allow"
    # No gang scheduling here: tests/chart/test_chart_rbac_real.py has a PodGroup.
    gang = {g for g in granted if g[1] == "podgroups"}
    unused = granted - sent - UNEXERCISED - gang
    assert unused == set(), "rights the chart grants and the operator never uses"
