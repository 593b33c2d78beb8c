"""The chart's RBAC covers every request the operator really sends.

A module of its own, so the emulator's access log holds only this scenario: an experiment
through creation, a recreated pod, success, token revocation and TTL deletion. The test
reads state in-process (not over HTTP) and its only API writes (creating the Experiment,
playing the kubelet) are left out of the comparison.
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
from operator_e2e_harness import Kube, experiment, pod_status, replica

from devcluster.testing import wait_for
from tests.chart.manifests import CHART_DIR, of_kind, rbac_grants, render_manifests

pytestmark = [pytest.mark.cluster, pytest.mark.emulator]
#: Real RBAC enforcement of the same rules: tests/chart/test_chart_rbac_real.py.
EMULATOR_BECAUSE = "compares the rules with the emulator's log of every request, reads included"

#: This test's own writes: the user creating the Experiment, the kubelet reporting pods.
TEST_WRITES = {("incluster.dev", "experiments", "create"), ("", "pods/status", "patch")}


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


def test_every_request_of_the_operator_is_granted_by_the_chart(kube: Kube) -> None:
    kube.create(
        experiment(
            "rb",
            {"master": replica(), "worker": replica(1, restart_policy="ExitCode")},
            ttlSecondsAfterFinished=1,
        )
    )
    first = wait_for(lambda: _pod_uid(kube, "rb-worker-0"), message="worker pod created")
    wait_for(lambda: _phase(kube, "rb") == "Pending", message="status written")
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
        or (access.namespace is None and access.resource in ("pods", "experiments"))
    }
    sent -= TEST_WRITES
    assert ("incluster.dev", "experiments", "delete") in sent  # the scenario reached TTL
    assert ("", "serviceaccounts/token", "create") in sent  # and minted a token
    manifests = render_manifests(helm_python.Chart.load(str(CHART_DIR)))
    granted = set().union(
        *(rbac_grants(role["rules"]) for role in of_kind(manifests, "ClusterRole"))
    )
    assert sent - granted == set(), "requests the chart's ClusterRole does not allow"
