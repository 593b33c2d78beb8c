"""Injected API errors and cut watches: the operator retries and never trusts a 409 blindly.

A module of its own: kmock matches every later request against the registered reactions,
which would slow down a shared emulator for unrelated tests.
"""

from __future__ import annotations

import kmock
import pytest
from operator_e2e_harness import Kube, experiment, replica

pytestmark = [pytest.mark.cluster, pytest.mark.emulator]
EMULATOR_BECAUSE = "fault injection: kmock answers chosen requests with 409, 500 or 422"


def test_injected_conflict_on_create_is_verified_not_trusted(kube: Kube) -> None:
    emulator = kube.cluster.emulator
    conflict = kmock.KubernetesError(status=409, reason="AlreadyExists", message="injected")
    ns = kmock.namespace(kube.namespace)
    kube.cluster.call(lambda: emulator["create v1/pods", ns][:1] << conflict)
    kube.create(experiment("e409", {"master": replica()}))
    # The 409 stored nothing: the operator reads, finds no pod, and creates it on retry.
    kube.wait_pods("e409", 1)
    kube.set_pods("e409", "Running")
    kube.wait_phase("e409", "Running")


def test_injected_server_errors_are_retried(kube: Kube) -> None:
    emulator = kube.cluster.emulator
    error = kmock.KubernetesError(status=500, reason="InternalError", message="injected")
    ns = kmock.namespace(kube.namespace)
    kube.cluster.call(lambda: emulator["create v1/pods", ns][:2] << error)
    kube.cluster.call(lambda: emulator["patch incluster.dev/v1alpha1/experiments", ns][:1] << error)
    kube.create(experiment("e500", {"master": replica(), "worker": replica(1)}))
    kube.wait_pods("e500", 2)
    kube.set_pods("e500", "Running")
    kube.wait_phase("e500", "Running")
    assert kube.calls("create", "pods") == 4  # two refused, two stored


def test_a_pod_the_api_server_rejects_fails_the_experiment(kube: Kube) -> None:
    emulator = kube.cluster.emulator
    invalid = kmock.KubernetesError(
        status=422, reason="Invalid", message='Pod "rej-master-0" is invalid: spec.containers'
    )
    ns = kmock.namespace(kube.namespace)
    kube.cluster.call(lambda: emulator["create v1/pods", ns] << invalid)
    kube.create(experiment("rej", {"master": replica()}))
    kube.wait_phase("rej", "Failed")
    failed = kube.condition("rej", "Failed")
    assert failed is not None
    assert failed["reason"] == "PodRejected"
    assert "spec.containers" in failed["message"]
    assert kube.calls("create", "pods") == 1  # a spec problem: not retried


def test_dropped_watches_are_resumed(kube: Kube) -> None:
    kube.create(experiment("cut", {"master": replica()}))
    kube.wait_pods("cut", 1)
    kube.wait_phase("cut", "Pending")
    assert kube.cluster.cut_watches() > 0
    kube.set_pod("cut-master-0", "Running")
    kube.wait_phase("cut", "Running")
    kube.cluster.cut_watches()
    kube.set_pod("cut-master-0", "Succeeded")
    kube.wait_phase("cut", "Succeeded")
