"""Failure paths: backoff, non-retryable exits, deadline, TTL, invalid specs, name conflicts."""

from __future__ import annotations

import kubernetes
import pytest
from incluster_operator.api.models import PLURAL
from operator_e2e_harness import GC_TIMEOUT, Kube, experiment, replica

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster


def test_failed_pods_are_recreated_until_the_backoff_limit(kube: Kube) -> None:
    kube.create(experiment("bo", {"worker": replica(2, restart_policy="ExitCode")}, backoffLimit=1))
    first = kube.wait_pods("bo", 2)["bo-worker-1"].metadata.uid
    kube.set_pods("bo", "Running")
    kube.wait_phase("bo", "Running")

    kube.set_pod("bo-worker-1", "Failed", exit_code=137)  # killed: retryable
    wait_for(
        lambda: (
            (pod := kube.pods("bo").get("bo-worker-1")) is not None and pod.metadata.uid != first
        ),
        message="bo-worker-1 recreated",
    )
    status = kube.wait_status("bo", lambda s: s.get("failures") == 1, "one failure counted")
    assert status["phase"] in ("Pending", "Running")
    restarting = kube.condition("bo", "Restarting")
    assert restarting is not None
    assert "bo-worker-1" in restarting["message"]

    kube.set_pod("bo-worker-1", "Failed", exit_code=143)  # the retry is used up
    kube.wait_phase("bo", "Failed")
    failed = kube.condition("bo", "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "backoffLimit=1" in failed["message"]
    assert ("Warning", "PodRecreated") in {(t, r) for t, r, _ in kube.events("bo")}


def test_a_non_retryable_exit_fails_at_once(kube: Kube) -> None:
    kube.create(experiment("nr", {"master": replica(restart_policy="ExitCode")}))
    kube.wait_pods("nr", 1)
    kube.set_pod("nr-master-0", "Failed", exit_code=2)
    kube.wait_phase("nr", "Failed")
    failed = kube.condition("nr", "Failed")
    assert failed is not None
    assert failed["reason"] == "PodFailed"
    assert "exit code 2" in failed["message"]
    # cleanPodPolicy Running keeps the failed pod for its logs.
    assert list(kube.pods("nr")) == ["nr-master-0"]


def test_active_deadline_fails_a_running_experiment(kube: Kube) -> None:
    kube.create(experiment("dl", {"master": replica()}, activeDeadlineSeconds=1))
    kube.wait_pods("dl", 1)
    kube.set_pods("dl", "Running")
    status = kube.wait_phase("dl", "Failed", timeout=20)
    assert kube.condition("dl", "Failed")["reason"] == "DeadlineExceeded"
    assert status["completionTime"]
    wait_for(lambda: not kube.pods("dl"), message="running pod cleaned up after the deadline")


def test_ttl_deletes_a_finished_experiment(kube: Kube) -> None:
    kube.create(experiment("ttl", {"master": replica()}, ttlSecondsAfterFinished=1))
    kube.wait_pods("ttl", 1)
    kube.set_pod("ttl-master-0", "Succeeded")
    kube.wait_phase("ttl", "Succeeded")
    wait_for(lambda: kube.get("ttl") is None, timeout=20, message="experiment deleted by TTL")
    wait_for(lambda: not kube.pods("ttl"), timeout=GC_TIMEOUT, message="its pods garbage-collected")


def test_invalid_spec_fails_once_without_children_or_retries(kube: Kube) -> None:
    # The CRD schema cannot know the replica types (a map), so this reaches the operator.
    bad = experiment("bad", {"worker": replica(1), "launcher": replica()})
    kube.create(bad)
    status = kube.wait_phase("bad", "Failed")
    condition = kube.condition("bad", "InvalidSpec")
    assert condition is not None
    assert condition["status"] == "True"
    assert "spec.replicas.launcher: unknown replica type" in condition["message"]
    assert "use one of" in condition["message"]
    assert status["completionTime"]
    # A later experiment in the same namespace runs to Pending: the operator has moved on.
    kube.create(experiment("good", {"master": replica()}))
    kube.wait_phase("good", "Pending")
    assert not kube.pods("bad")
    assert not kube.core.list_namespaced_service(
        kube.namespace, label_selector=("incluster.dev/experiment=bad")
    ).items
    status_writes = kube.calls("patch", f"{PLURAL}/status", "bad")
    assert status_writes == 1, "one status write, no retry loop"
    wait_for(lambda: kube.events("bad"), message="the InvalidSpec event")
    assert [r for _, r, _ in kube.events("bad")] == ["InvalidSpec"]
    assert "kopf" not in str(kube.get("bad")["status"])


def test_what_the_schema_refuses_is_refused_at_apply_naming_the_field(kube: Kube) -> None:
    """A real API server checks the CRD's schema: the user hears of it at `kubectl apply`.

    (The emulator checks no schema; there the operator's own InvalidSpec says the same.)
    """
    if kube.cluster.is_emulator:
        pytest.skip("the emulator does not validate custom resources against their schema")
    with pytest.raises(kubernetes.client.ApiException) as refused:
        kube.create(experiment("zero", {"worker": replica(0)}))
    assert refused.value.status == 422
    assert "spec.replicas.worker.replicas" in str(refused.value.body)
    assert kube.get("zero") is None


def test_a_child_name_taken_by_someone_else_fails_clearly(kube: Kube) -> None:
    kube.core.create_namespaced_service(
        kube.namespace,
        {"metadata": {"name": "taken"}, "spec": {"ports": [{"port": 80}]}},
    )
    kube.create(experiment("taken", {"master": replica()}))
    kube.wait_phase("taken", "Failed")
    failed = kube.condition("taken", "Failed")
    assert failed is not None
    assert failed["reason"] == "ChildConflict"
    assert "Service" in failed["message"]
    assert "rename the experiment" in failed["message"]
    assert not kube.pods("taken")
    service = kube.core.read_namespaced_service("taken", kube.namespace)
    assert not service.metadata.owner_references  # left as it was
