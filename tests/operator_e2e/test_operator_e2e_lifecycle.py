"""An Experiment's life through kopf and the real client: children, status, events, end."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from incluster_operator.api import names
from operator_e2e_harness import GC_TIMEOUT, Kube, experiment, replica

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_create_makes_children_owned_by_the_experiment(kube: Kube) -> None:
    created = kube.create(
        experiment("tf", {"master": replica(), "worker": replica(2), "ps": replica(port=2223)})
    )
    uid = created["metadata"]["uid"]
    pods = kube.wait_pods("tf", 4)
    assert sorted(pods) == ["tf-master-0", "tf-ps-0", "tf-worker-0", "tf-worker-1"]
    for pod in pods.values():
        assert [ref.uid for ref in pod.metadata.owner_references] == [uid]
        assert pod.spec.hostname == pod.metadata.name
        assert pod.spec.subdomain == "tf"
    service = kube.core.read_namespaced_service("tf", kube.namespace)
    assert service.spec.cluster_ip == "None"
    assert service.metadata.owner_references[0].uid == uid
    config_map = kube.core.read_namespaced_config_map("tf-context", kube.namespace)
    assert config_map.metadata.owner_references[0].uid == uid
    # The pod's one credential: a projected token of its own account for the report API,
    # a file (never env); no Secret, ServiceAccount, Role or RoleBinding is created for it.
    context = next(v for v in pods["tf-master-0"].spec.volumes if v.name == names.VOLUME_CONTEXT)
    sources = context.projected.sources
    (token,) = [s.service_account_token for s in sources if s.service_account_token]
    assert (token.audience, token.path) == ("incluster.dev", "token/token")
    assert pods["tf-master-0"].spec.service_account_name in (None, "default")
    assert kube.core.list_namespaced_secret(kube.namespace).items == []
    assert kube.calls("create", "serviceaccounts") == kube.calls("create", "roles") == 0
    assert kube.calls("create", "rolebindings") == kube.calls("create", "secrets") == 0

    status = kube.wait_phase("tf", "Pending")
    assert status["ready"] == "0/4"
    # The run is the Experiment object: its uid names the run and its outputs directory.
    assert status["runId"] == uid
    assert status["outputsPath"] == f"/outputs/{kube.namespace}/tests/tf/{uid}"
    assert status["startTime"]
    assert status["replicaStatuses"]["worker"] == {"active": 2, "succeeded": 0, "failed": 0}
    assert kube.condition("tf", "Created")["reason"] == "PodsCreated"


def test_pod_phases_drive_the_status_and_events(kube: Kube) -> None:
    kube.create(experiment("run", {"master": replica(), "worker": replica(2)}))
    kube.wait_pods("run", 3)
    kube.set_pod("run-worker-0", "Running")
    status = kube.wait_status("run", lambda s: s.get("ready") == "1/3", "one pod running")
    assert status["phase"] == "Pending"
    kube.set_pods("run", "Running")
    status = kube.wait_phase("run", "Running")
    assert status["ready"] == "3/3"
    running = kube.condition("run", "Running")
    assert running is not None
    assert (running["status"], running["reason"]) == ("True", "PodsRunning")

    kube.set_pod("run-master-0", "Succeeded")
    status = kube.wait_phase("run", "Succeeded")
    assert status["completionTime"] >= status["startTime"]
    succeeded = kube.condition("run", "Succeeded")
    assert succeeded is not None
    assert "master 0 succeeded" in succeeded["message"]
    # cleanPodPolicy Running (the default): the workers still running are deleted.
    wait_for(lambda: list(kube.pods("run")) == ["run-master-0"], message="workers cleaned up")
    expected = ["ExperimentPending", "ExperimentRunning", "ExperimentSucceeded"]
    wait_for(
        lambda: [reason for _, reason, _ in kube.events("run")] == expected,
        message="one Event per transition",
    )


def test_without_master_worker_zero_decides(kube: Kube) -> None:
    kube.create(experiment("w0", {"worker": replica(2)}, cleanPodPolicy="None"))
    kube.wait_pods("w0", 2)
    kube.set_pods("w0", "Running")
    kube.wait_phase("w0", "Running")
    kube.set_pod("w0-worker-1", "Succeeded")
    kube.wait_status(
        "w0", lambda s: s["replicaStatuses"]["worker"]["succeeded"] == 1, "worker 1 counted"
    )
    assert kube.status("w0")["phase"] == "Running"
    kube.set_pod("w0-worker-0", "Succeeded")
    kube.wait_phase("w0", "Succeeded")
    assert len(kube.pods("w0")) == 2  # cleanPodPolicy None keeps every pod


def test_clean_pod_policy_all_deletes_finished_pods_too(kube: Kube) -> None:
    kube.create(
        experiment("all", {"master": replica(), "worker": replica(1)}, cleanPodPolicy="All")
    )
    kube.wait_pods("all", 2)
    kube.set_pod("all-worker-0", "Succeeded")
    kube.set_pod("all-master-0", "Succeeded")
    kube.wait_phase("all", "Succeeded")
    wait_for(lambda: not kube.pods("all"), message="every pod deleted")
    # READY and the counts are of the pods that exist: none are left.
    kube.wait_status("all", lambda s: s.get("ready") == "0/2", "READY 0/2 after cleanup")
    assert kube.status("all")["replicaStatuses"]["worker"] == {
        "active": 0,
        "succeeded": 0,
        "failed": 0,
    }


def test_all_workers_policy_waits_for_every_worker(kube: Kube) -> None:
    kube.create(
        experiment("aw", {"chief": replica(), "worker": replica(2)}, successPolicy="allWorkers")
    )
    kube.wait_pods("aw", 3)
    kube.set_pods("aw", "Running")
    kube.wait_phase("aw", "Running")
    kube.set_pod("aw-chief-0", "Succeeded")
    kube.set_pod("aw-worker-0", "Succeeded")
    kube.wait_status(
        "aw", lambda s: s["replicaStatuses"]["worker"]["succeeded"] == 1, "worker 0 counted"
    )
    assert kube.status("aw")["phase"] == "Running"
    kube.set_pod("aw-worker-1", "Succeeded")
    status = kube.wait_phase("aw", "Succeeded")
    assert "all 3" in kube.condition("aw", "Succeeded")["message"]
    assert status["replicaStatuses"]["worker"]["succeeded"] == 2


def test_deleting_the_experiment_deletes_its_children(kube: Kube) -> None:
    kube.create(experiment("gone", {"master": replica(), "worker": replica(1)}))
    kube.wait_pods("gone", 2)
    kube.wait_phase("gone", "Pending")
    kube.delete("gone")
    wait_for(lambda: kube.get("gone") is None, message="experiment deleted (finalizer removed)")
    wait_for(lambda: not kube.pods("gone"), timeout=GC_TIMEOUT, message="pods garbage-collected")
    wait_for(
        lambda: (
            not kube.core.list_namespaced_config_map(
                kube.namespace, label_selector=f"{names.LABEL_EXPERIMENT}=gone"
            ).items
        ),
        message="context ConfigMap garbage-collected",
        timeout=GC_TIMEOUT,
    )


def test_kubectl_apply_example_and_get_xp(kube: Kube) -> None:
    kube.cluster.kubectl(
        "--namespace", kube.namespace, "apply", "-f", str(EXAMPLES / "01-single.yaml")
    )
    kube.wait_pods("single", 1)
    kube.set_pods("single", "Running")
    kube.wait_phase("single", "Running")
    table = kube.cluster.kubectl("--namespace", kube.namespace, "get", "xp").stdout
    assert table.splitlines()[1].split()[0] == "single"
    one = kube.cluster.kubectl(
        "--namespace", kube.namespace, "get", "xp", "single", "-o", "jsonpath={.status.phase}"
    ).stdout
    assert one == "Running"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_applies_and_its_pods_are_accepted(kube: Kube, path: Path) -> None:
    """`kubectl apply` of each example: the API server admits the Experiment, then every
    pod the operator renders for it (a real server validates pods; the emulator cannot)."""
    doc = yaml.safe_load(path.read_text())
    name = doc["metadata"]["name"]
    total = sum(r.get("replicas", 1) for r in doc["spec"]["replicas"].values())
    for ref in doc["spec"].get("outputsRefs", {}).get("experiments", []):
        # A ref mounts a run of an existing Experiment: the example it names comes first.
        (needed,) = [p for p in EXAMPLES.glob("*.yaml") if f"name: {ref}\n" in p.read_text()]
        kube.cluster.kubectl("--namespace", kube.namespace, "apply", "-f", str(needed))
    kube.cluster.kubectl("--namespace", kube.namespace, "apply", "-f", str(path))
    kube.wait_pods(name, total)
    status = kube.wait_phase(name, "Pending")
    assert status["ready"] == f"0/{total}"
    assert kube.condition(name, "Failed") is None


def test_template_fields_reach_the_api_server_untouched(kube: Kube) -> None:
    """The API server judges the pod, not the client's models (which lag behind it)."""
    master = replica()
    master["template"]["spec"]["containers"][0]["fieldFromTheFuture"] = {"on": True}
    kube.create(experiment("fut", {"master": master}))
    kube.wait_pods("fut", 1)
    stored = kube.cluster.call(
        lambda: kube.cluster.emulator.stored("v1/pods", kube.namespace, "fut-master-0")
    )
    assert stored["spec"]["containers"][0]["fieldFromTheFuture"] == {"on": True}
