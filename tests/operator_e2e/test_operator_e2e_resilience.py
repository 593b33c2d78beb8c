"""Restarts: the operator converges without duplicates (dropped watches: the faults module)."""

from __future__ import annotations

import pytest
from operator_e2e_harness import Kube, Running, experiment, replica

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster


def test_restart_resumes_without_duplicate_pods(kube: Kube, running: Running) -> None:
    kube.create(experiment("rs", {"master": replica(), "worker": replica(2, "ExitCode")}))
    before = {name: pod.metadata.uid for name, pod in kube.wait_pods("rs", 3).items()}
    kube.wait_phase("rs", "Pending")
    service = kube.core.read_namespaced_service("rs", kube.namespace).metadata.uid
    with running.operator.stopped():
        # While the operator is down, the kubelet reports progress and one failure.
        kube.set_pod("rs-master-0", "Running")
        kube.set_pod("rs-worker-0", "Running")
        kube.set_pod("rs-worker-1", "Failed", exit_code=137)
    # The new operator picks the experiment up: the failed pod is replaced, nothing else.
    wait_for(
        lambda: (
            (pod := kube.pods("rs").get("rs-worker-1")) is not None
            and pod.metadata.uid != before["rs-worker-1"]
        ),
        message="the failed worker recreated after the restart",
    )
    kube.set_pod("rs-worker-1", "Running")
    status = kube.wait_phase("rs", "Running")
    assert status["failures"] == 1
    after = {name: pod.metadata.uid for name, pod in kube.pods("rs").items()}
    assert {k: v for k, v in after.items() if k != "rs-worker-1"} == {
        k: v for k, v in before.items() if k != "rs-worker-1"
    }
    assert kube.calls("create", "pods") == 4  # 3 pods + 1 replacement, no duplicates
    # The restart's create answered 409; the operator verified ownership and adopted it.
    assert kube.core.read_namespaced_service("rs", kube.namespace).metadata.uid == service


def test_restart_of_a_finished_experiment_changes_nothing(kube: Kube, running: Running) -> None:
    kube.create(experiment("fin", {"master": replica()}))
    kube.wait_pods("fin", 1)
    kube.set_pod("fin-master-0", "Succeeded")
    kube.wait_phase("fin", "Succeeded")
    events = wait_for(
        lambda: (found := kube.events("fin")) and found[-1][1] == "ExperimentSucceeded" and found,
        message="the ExperimentSucceeded event",
    )
    with running.operator.stopped():
        pass
    # A later experiment reaching Pending shows the restarted operator is past "fin".
    kube.create(experiment("later", {"master": replica()}))
    kube.wait_phase("later", "Pending")
    assert kube.events("fin") == events
    assert kube.calls("create", "services") == 2  # fin's and later's, no re-creation
