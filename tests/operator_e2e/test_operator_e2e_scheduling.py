"""Sharing a cluster on the real control plane: suspend, Kueue gates, PodGroups, restarts.

The test plays the kubelet (pod status) and, for the queue, Kueue: pods are created with
Kueue's admission gate and the test lifts it as Kueue's pod controller does on admission.
The PodGroup CRDs are the upstream APIs' (tests/operator_e2e/crds/), installed on the
session's API server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import pytest
from incluster import contract
from incluster_operator.api import names
from incluster_operator.api.models import GROUP, PLURAL, VERSION
from operator_e2e_harness import Kube, Running, container, experiment, replica

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster

CRDS = Path(__file__).resolve().parent / "crds"
KUEUE_GATE = "kueue.x-k8s.io/admission"


def patch_spec(kube: Kube, name: str, spec: dict[str, Any]) -> None:
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube.namespace, PLURAL, name, {"spec": spec}
    )


def env_of(pod: Any) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or []}


def test_suspend_deletes_the_pods_and_resume_brings_them_back_with_the_same_context(
    kube: Kube,
) -> None:
    kube.create(experiment("sus", {"worker": replica(2)}, activeDeadlineSeconds=3600))
    before = kube.wait_pods("sus", 2)
    kube.set_pods("sus", "Running")
    kube.wait_phase("sus", "Running")
    config_map = kube.core.read_namespaced_config_map("sus-context", kube.namespace)

    patch_spec(kube, "sus", {"suspend": True})
    status = kube.wait_phase("sus", "Suspended")
    wait_for(lambda: not kube.pods("sus"), message="no pod while suspended")
    suspended = kube.condition("sus", "Suspended")
    assert suspended is not None
    assert suspended["status"] == "True"
    assert status["pausedSince"]  # the deadline clock stopped
    assert status["startTime"]  # the status is kept
    # It stays so: the operator does not create pods for a suspended experiment.
    assert kube.wait_status("sus", lambda s: s["replicaStatuses"]["worker"]["active"] == 0, "0")
    assert not kube.pods("sus")

    patch_spec(kube, "sus", {"suspend": False})
    after = kube.wait_pods("sus", 2)
    for pod_name, pod in after.items():
        assert pod.metadata.uid != before[pod_name].metadata.uid
        assert env_of(pod) == env_of(before[pod_name])
    same = kube.core.read_namespaced_config_map("sus-context", kube.namespace)
    assert same.metadata.uid == config_map.metadata.uid
    assert same.data == config_map.data
    kube.set_pods("sus", "Running")
    status = kube.wait_phase("sus", "Running")
    assert "pausedSince" not in status
    resumed = kube.condition("sus", "Suspended")
    assert resumed is not None
    assert resumed["status"] == "False"
    reasons = [r for _, r, _ in kube.events("sus")]
    assert reasons.index("Suspended") < reasons.index("Resumed")
    # A started run keeps its spec, but suspend is a switch it follows: no ignored edit.
    assert kube.condition("sus", "SpecChangeIgnored") is None


def test_an_experiment_created_suspended_has_no_pods_until_resumed(kube: Kube) -> None:
    manifest = experiment("cs", {"master": replica()})
    manifest["spec"]["suspend"] = True
    kube.create(manifest)
    status = kube.wait_phase("cs", "Suspended")
    assert "startTime" not in status
    assert not kube.pods("cs")
    patch_spec(kube, "cs", {"suspend": False})
    kube.wait_pods("cs", 1)
    assert kube.wait_status("cs", lambda s: bool(s.get("startTime")), "started")


def test_kubectl_get_and_describe_show_suspended_and_the_attempt(kube: Kube) -> None:
    manifest = experiment("col", {"master": replica()})
    manifest["spec"]["suspend"] = True
    kube.create(manifest)
    kube.wait_phase("col", "Suspended")
    table = kube.cluster.kubectl("get", "xp", "col", "--namespace", kube.namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "PROJECT", "PHASE", "READY", "ATTEMPT", "METRIC"]
    assert row.split()[:3] == ["col", "tests", "Suspended"]
    assert row.split()[4] == "1"
    described = kube.cluster.kubectl("describe", "xp", "col", "--namespace", kube.namespace)
    assert "Suspended" in described.stdout
    assert "Attempt:" in described.stdout


def test_kueue_pods_are_queued_while_gated_and_run_once_the_gates_are_lifted(
    kube: Kube,
) -> None:
    gated = replica(2)
    gated["template"]["spec"]["schedulingGates"] = [{"name": KUEUE_GATE}]
    manifest = experiment("kq", {"worker": gated})
    manifest["spec"]["schedulingPolicy"] = {"queue": "team-a"}
    kube.create(manifest)
    pods = kube.wait_pods("kq", 2)
    for pod in pods.values():
        assert pod.metadata.labels["kueue.x-k8s.io/queue-name"] == "team-a"
        assert pod.metadata.labels["kueue.x-k8s.io/pod-group-name"] == "kq"
        assert pod.metadata.annotations["kueue.x-k8s.io/pod-group-total-count"] == "2"
    kube.wait_phase("kq", "Queued")
    queued = kube.condition("kq", "Queued")
    assert queued is not None
    assert queued["status"] == "True"
    assert KUEUE_GATE in queued["message"]
    assert set(kube.pods("kq")) == set(pods)  # gated pods are left alone

    for pod in pods:  # Kueue admits the group: it removes its gate from every pod
        kube.core.patch_namespaced_pod(
            pod, kube.namespace, [{"op": "remove", "path": "/spec/schedulingGates"}]
        )
    kube.set_pods("kq", "Running")
    status = kube.wait_phase("kq", "Running")
    admitted = kube.condition("kq", "Queued")
    assert admitted is not None
    assert admitted["status"] == "False"
    assert "pausedSince" not in status
    assert {p.metadata.uid for p in kube.pods("kq").values()} == {
        p.metadata.uid for p in pods.values()
    }


def test_pods_kueue_preempts_are_recreated_for_the_group_and_not_counted(kube: Kube) -> None:
    manifest = experiment("kp", {"master": replica(), "worker": replica(2)})
    manifest["spec"]["schedulingPolicy"] = {"queue": "team-a"}
    kube.create(manifest)
    first = kube.wait_pods("kp", 3)
    kube.set_pods("kp", "Running")
    kube.wait_phase("kp", "Running")
    # Kueue evicts the group: it marks every pod as a disruption target, then deletes it.
    for pod in first:
        kube.core.patch_namespaced_pod_status(
            pod,
            kube.namespace,
            {"status": {"conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "EvictedByKueue"}
            ]}},
        )  # fmt: skip
        kube.core.delete_namespaced_pod(pod, kube.namespace)

    def replaced() -> dict[str, Any] | None:
        pods = kube.pods("kp")
        fresh = all(p.metadata.uid != first[n].metadata.uid for n, p in pods.items())
        return pods if len(pods) == 3 and fresh else None

    again = wait_for(replaced, message="the group's pods recreated")
    assert {p.metadata.labels["kueue.x-k8s.io/pod-group-name"] for p in again.values()} == {"kp"}
    status = kube.status("kp")
    assert status["phase"] != "Failed"
    assert status.get("failures", 0) == 0
    assert status["attempt"] == 1


def test_a_kueue_queue_label_on_the_experiment_labels_every_pod(kube: Kube) -> None:
    manifest = experiment("kl", {"master": replica(), "worker": replica(2)})
    manifest["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team-b"}
    kube.create(manifest)
    pods = kube.wait_pods("kl", 3)
    assert {p.metadata.labels["kueue.x-k8s.io/queue-name"] for p in pods.values()} == {"team-b"}
    assert {
        p.metadata.annotations["kueue.x-k8s.io/pod-group-total-count"] for p in pods.values()
    } == {"3"}


def test_a_failed_kueue_group_is_marked_not_retriable_so_kueue_frees_its_quota(
    kube: Kube,
) -> None:
    manifest = experiment("kf", {"master": replica(), "worker": replica()})
    manifest["spec"]["schedulingPolicy"] = {"queue": "team-a"}
    kube.create(manifest)
    kube.wait_pods("kf", 2)
    kube.set_pods("kf", "Running")
    kube.set_pod("kf-master-0", "Failed", exit_code=1)
    kube.wait_phase("kf", "Failed")
    kept = wait_for(lambda: kube.pods("kf").get("kf-master-0"), message="failed pod kept")
    assert kept.metadata.annotations["kueue.x-k8s.io/retriable-in-group"] == "false"


def _served(kube: Kube, group: str, version: str) -> bool:
    try:
        kube.custom.list_namespaced_custom_object(group, version, kube.namespace, "podgroups")
    except kubernetes.client.ApiException:
        return False
    return True


@pytest.fixture
def podgroups(running: Running, kube: Kube) -> Kube:
    """The upstream PodGroup APIs of scheduler-plugins and Volcano, served."""
    for crd in sorted(CRDS.glob("*.yaml")):
        running.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    wait_for(lambda: _served(kube, "scheduling.x-k8s.io", "v1alpha1"), message="PodGroups")
    wait_for(lambda: _served(kube, "scheduling.volcano.sh", "v1beta1"), message="Volcano's")
    return kube


def test_scheduler_plugins_gets_a_podgroup_with_min_available(podgroups: Kube) -> None:
    kube = podgroups
    manifest = experiment("gang", {"master": replica(), "worker": replica(3)})
    manifest["spec"]["schedulingPolicy"] = {
        "scheduler": "scheduler-plugins",
        "minAvailable": 3,
        "priorityClass": "system-cluster-critical",
    }
    created = kube.create(manifest)
    pods = kube.wait_pods("gang", 4)
    group = kube.custom.get_namespaced_custom_object(
        "scheduling.x-k8s.io", "v1alpha1", kube.namespace, "podgroups", "gang"
    )
    assert group["spec"]["minMember"] == 3
    (owner,) = group["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "Experiment",
        created["metadata"]["uid"],
        True,
    )
    for pod in pods.values():
        assert pod.spec.scheduler_name == "scheduler-plugins-scheduler"
        assert pod.metadata.labels["scheduling.x-k8s.io/pod-group"] == "gang"
        assert pod.spec.priority_class_name == "system-cluster-critical"


def test_volcano_gets_a_podgroup_of_every_replica_in_its_queue(podgroups: Kube) -> None:
    kube = podgroups
    manifest = experiment("vc", {"worker": replica(2)})
    manifest["spec"]["schedulingPolicy"] = {"scheduler": "volcano", "queue": "research"}
    kube.create(manifest)
    pods = kube.wait_pods("vc", 2)
    group = kube.custom.get_namespaced_custom_object(
        "scheduling.volcano.sh", "v1beta1", kube.namespace, "podgroups", "vc"
    )
    assert group["spec"]["minMember"] == 2  # default: every replica
    assert group["spec"]["queue"] == "research"
    for pod in pods.values():
        assert pod.spec.scheduler_name == "volcano"
        assert pod.metadata.annotations["scheduling.k8s.io/group-name"] == "vc"
        assert "kueue.x-k8s.io/queue-name" not in pod.metadata.labels


def restartable(name: str, **failure_policy: Any) -> dict[str, Any]:
    manifest = experiment(name, {"master": replica(), "worker": replica(2)})
    manifest["spec"]["runPolicy"] = {
        "failurePolicy": {"restartExperiment": True, "maxRestarts": 2, **failure_policy}
    }
    return manifest


def test_a_retriable_failure_restarts_every_pod_and_attempt_2_succeeds(kube: Kube) -> None:
    kube.create(restartable("rs"))
    first = kube.wait_pods("rs", 3)
    assert {p.metadata.labels[names.LABEL_ATTEMPT] for p in first.values()} == {"1"}
    assert env_of(first["rs-worker-0"])[contract.ENV_ATTEMPT] == "1"
    kube.set_pods("rs", "Running")
    kube.wait_phase("rs", "Running")

    kube.set_pod("rs-worker-1", "Failed", exit_code=137)  # killed: retriable by default

    def second_attempt() -> dict[str, Any] | None:
        pods = kube.pods("rs")
        fresh = {n: p for n, p in pods.items() if p.metadata.labels[names.LABEL_ATTEMPT] == "2"}
        return pods if len(pods) == 3 and len(fresh) == 3 else None

    second = wait_for(second_attempt, message="every pod recreated as attempt 2")
    for name, pod in second.items():
        assert pod.metadata.uid != first[name].metadata.uid
        env = env_of(pod)
        assert env[contract.ENV_ATTEMPT] == "2"
        assert '"attempt":2' in env[contract.ENV_EXPERIMENT_INFO]
    status = kube.status("rs")
    assert (status["attempt"], status["experimentRestarts"]) == (2, 1)

    kube.set_pods("rs", "Running")
    kube.wait_phase("rs", "Running")
    kube.set_pod("rs-master-0", "Succeeded")
    status = kube.wait_phase("rs", "Succeeded")
    assert status["attempt"] == 2
    restarting = kube.condition("rs", "Restarting")
    assert restarting is not None
    assert restarting["status"] == "False"
    events = kube.events("rs")
    assert ("Warning", "ExperimentRestarting") in {(t, r) for t, r, _ in events}
    assert any("attempt 2 starts" in m for _, _, m in events)


def test_a_non_retriable_failure_fails_at_once_without_a_restart(kube: Kube) -> None:
    kube.create(restartable("nrs", retriableExitCodes=[137]))
    first = kube.wait_pods("nrs", 3)
    kube.set_pods("nrs", "Running")
    kube.wait_phase("nrs", "Running")
    kube.set_pod("nrs-worker-0", "Failed", exit_code=1)
    status = kube.wait_phase("nrs", "Failed")
    assert status["attempt"] == 1
    failed = kube.condition("nrs", "Failed")
    assert failed is not None
    assert failed["reason"] == "PodFailed"
    assert "exit code 1" in failed["message"]
    assert {p.metadata.uid for p in kube.pods("nrs").values()} <= {
        p.metadata.uid for p in first.values()
    }


def test_the_restart_bound_fails_the_experiment_when_used_up(kube: Kube) -> None:
    manifest = restartable("bound")
    manifest["spec"]["runPolicy"]["failurePolicy"]["maxRestarts"] = 0
    kube.create(manifest)
    kube.wait_pods("bound", 3)
    kube.set_pod("bound-worker-0", "Failed", exit_code=143)
    kube.wait_phase("bound", "Failed")
    failed = kube.condition("bound", "Failed")
    assert failed is not None
    assert failed["reason"] == "RestartLimitExceeded"
    assert "maxRestarts=0" in failed["message"]


@pytest.mark.parametrize(
    ("scheduling", "failure", "field"),
    [
        ({"scheduler": "yunikorn"}, None, "spec.schedulingPolicy.scheduler"),
        ({"minAvailable": 4, "scheduler": "volcano"}, None, "spec.schedulingPolicy.minAvailable"),
        ({"queue": "Team_A"}, None, "spec.schedulingPolicy.queue"),
        (None, {"restartExperiment": True}, "spec.runPolicy.failurePolicy.maxRestarts"),
    ],
)
def test_bad_scheduling_input_is_an_invalid_spec_naming_the_field(
    kube: Kube,
    scheduling: dict[str, Any] | None,
    failure: dict[str, Any] | None,
    field: str,
) -> None:
    manifest = experiment("bad", {"master": replica(), "worker": replica(2)})
    if scheduling:
        manifest["spec"]["schedulingPolicy"] = scheduling
    if failure:
        manifest["spec"]["runPolicy"] = {"failurePolicy": failure}
    kube.create(manifest)
    kube.wait_phase("bad", "Failed")
    condition = kube.condition("bad", "InvalidSpec")
    assert condition is not None
    assert condition["message"].startswith(field)
    assert not kube.pods("bad")


def test_the_template_may_not_contradict_the_scheduling_policy(kube: Kube) -> None:
    mine = replica()
    mine["template"]["spec"]["schedulerName"] = "my-scheduler"
    mine["template"]["spec"]["containers"] = [container()]
    manifest = experiment("clash", {"master": mine})
    manifest["spec"]["schedulingPolicy"] = {"scheduler": "volcano"}
    kube.create(manifest)
    kube.wait_phase("clash", "Failed")
    condition = kube.condition("clash", "InvalidSpec")
    assert condition is not None
    assert "spec.replicas.master.template.spec" in condition["message"]
    assert "my-scheduler" in condition["message"]


def test_an_unknown_priority_class_fails_the_experiment_with_the_servers_reason(
    kube: Kube,
) -> None:
    manifest = experiment("prio", {"master": replica()})
    manifest["spec"]["schedulingPolicy"] = {"priorityClass": "no-such-class"}
    kube.create(manifest)
    kube.wait_phase("prio", "Failed")
    failed = kube.condition("prio", "Failed")
    assert failed is not None
    assert failed["reason"] == "PodRejected"
    assert "no-such-class" in failed["message"]
