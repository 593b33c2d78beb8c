"""The whole chain: kubectl apply -> operator -> pods -> processes -> SDK -> status.

Here the API is the session's real kube-apiserver, with the pod runner as a node and the
operator as real processes, one stack per test namespace (``devcluster.demo.DevStack``);
the emulator's stack with INCLUSTER_TEST_CLUSTER=emulator. With
``INCLUSTER_TEST_KUBECONFIG`` pointing at a cluster of your own that runs the operator,
and ``INCLUSTER_TEST_IMAGE`` naming an image built from examples/Dockerfile, the same tests
run there (file checks need the local pod runner and are skipped).
"""

from __future__ import annotations

import json
import os
import secrets
import sys

import pytest
import yaml
from incluster import read_events
from incluster.tracking.events import Metric

from devcluster.demo import EXAMPLE, DevStack, Stack
from devcluster.pytest_plugin import session_api
from devcluster.testing import REAL_CLUSTER_ENV
from tests.local.helpers import free_port

IMAGE_ENV = "INCLUSTER_TEST_IMAGE"
REPLICAS = ["master-0", "ps-0", "worker-0", "worker-1"]

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def emulator_stack(tmp_path_factory):
    with DevStack.at(tmp_path_factory.mktemp("stack")) as dev:
        yield dev


@pytest.fixture
def stack(request, tmp_path):
    """The session's real API server with a node and an operator for this test's namespace;
    a cluster of your own (INCLUSTER_TEST_KUBECONFIG); or the emulator's stack."""
    found = session_api()
    if found is None:
        yield request.getfixturevalue("emulator_stack")
        return
    kubeconfig, audit_log = found
    if audit_log is None:  # a cluster of your own, with the operator installed
        if not os.environ.get(IMAGE_ENV):
            pytest.skip(f"{REAL_CLUSTER_ENV} is set but {IMAGE_ENV} (the example image) is not")
        yield Stack(kubeconfig)
        return
    namespace = f"e2e-{secrets.token_hex(4)}"
    admin = Stack(kubeconfig)
    admin.kubectl("create", "namespace", namespace)
    try:
        with DevStack.at(tmp_path / "stack", api_kubeconfig=kubeconfig, namespace=namespace) as dev:
            yield dev
    finally:
        admin.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def namespace(stack, tmp_path):
    if isinstance(stack, DevStack) and stack.namespace:
        yield stack.namespace
        return
    name = f"e2e-{secrets.token_hex(4)}"
    manifest = tmp_path / "namespace.yaml"
    manifest.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    )
    stack.kubectl("apply", "-f", str(manifest))
    yield name
    if not isinstance(stack, DevStack):
        stack.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(stack, tmp_path, namespace, change=None):
    """The example in this test's namespace, on a free port (other tests share loopback)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["namespace"] = namespace
    port = free_port()
    for replica in doc["spec"]["replicas"].values():
        replica["port"] = port
        container = replica["template"]["spec"]["containers"][0]
        if os.environ.get(IMAGE_ENV):
            container["image"] = os.environ[IMAGE_ENV]
    if change is not None:
        change(doc)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    stack.kubectl("apply", "-f", str(path))
    return doc["metadata"]["name"]


def condition(status, kind):
    return next(c for c in status["conditions"] if c["type"] == kind and c["status"] == "True")


def test_distributed_example_succeeds_with_every_replica_seeing_its_peers(
    stack, namespace, tmp_path
):
    name = apply(stack, tmp_path, namespace)
    assert stack.wait_finished(name, namespace) == "Succeeded"
    xp = stack.experiment(name, namespace)
    status = xp["status"]
    assert condition(status, "Succeeded")["message"] == "master 0 succeeded"
    # The master decides; the others report "done" to it just before exiting, so when it
    # succeeds they may still be exiting (then cleaned up): none may have failed.
    replicas = status["replicaStatuses"]
    assert set(replicas) == {"master", "worker", "ps"}
    assert replicas["master"]["succeeded"] == 1
    assert all(s.get("failed", 0) == 0 for s in replicas.values()), replicas
    phase = stack.kubectl("get", "xp", name, "-n", namespace, "-o", "jsonpath={.status.phase}")
    assert phase == "Succeeded"
    # `kubectl get xp` prints the CRD's printer columns, as on a real cluster.
    header, row = stack.kubectl("get", "xp", name, "-n", namespace).splitlines()
    assert header.split() == ["NAME", "PROJECT", "PHASE", "READY", "ATTEMPT", "METRIC", "AGE"]
    assert row[header.index("PHASE") :].split()[0] == "Succeeded"
    if not isinstance(stack, DevStack):
        return
    # Each replica read its own identity and the same four distinct peers.
    clusters = {}
    for replica in REPLICAS:
        (log,) = stack.pods_dir.glob(f"pods/{namespace}/{name}-{replica}-*/logs/main.log")
        lines = log.read_text().splitlines()
        kind, index = replica.rsplit("-", 1)
        me = f"{kind}:{index}"
        assert lines[0].startswith(f"{me}: cluster ")
        clusters[replica] = lines[0].split(": cluster ", 1)[1]
        others = sorted({"master:0", "ps:0", "worker:0", "worker:1"} - {me})
        assert f"{me}: exchanged greetings with {others}" in lines
    assert len(set(clusters.values())) == 1
    # Loopback addressing: each pod's IP is its own address in the cluster definition.
    cm = stack.kubectl("get", "configmap", f"{name}-context", "-n", namespace, "-o", "json")
    cluster = json.loads(json.loads(cm)["data"]["cluster.json"])
    # (cleanPodPolicy Running may already have deleted replicas still exiting: check the
    # pods that are left, the master among them.)
    listed = stack.kubectl("get", "pods", "-n", namespace, "-o", "json")
    pods = {p["metadata"]["name"]: p for p in json.loads(listed)["items"]}
    assert f"{name}-master-0" in pods
    for replica in REPLICAS:
        kind, index = replica.rsplit("-", 1)
        if f"{name}-{replica}" in pods:
            host = cluster[kind][int(index)].rsplit(":", 1)[0]
            assert pods[f"{name}-{replica}"]["status"]["podIP"] == host
    # Metrics and an artifact per replica, in the outputs path the status reports.
    outputs = stack.outputs_dir(status["outputsPath"].removeprefix("/outputs/"))
    for replica in REPLICAS:
        events = list(read_events(outputs / "events" / f"{replica}.jsonl"))
        reached = [e.value for e in events if isinstance(e, Metric) and e.name == "peers_reached"]
        assert reached == [3]
        assert json.loads((outputs / f"model-{replica}.json").read_text())["loss"] < 1
    # The master's summary reached the status through the operator's report API (TLS, the
    # pod's projected token, TokenReview): the pod itself holds no Kubernetes right.
    assert status["tracking"]["metrics"]["peers_reached"]["value"] == 3


def test_a_killed_worker_restarts_the_experiment_and_each_attempt_tracks_apart(
    stack, namespace, tmp_path
):
    # Attempt 1: every replica logs its attempt; worker 1 is then SIGKILLed (exit 137,
    # retriable) while the others wait. Attempt 2: every replica logs and exits 0.
    program = (
        "import json, os, signal, time; from incluster import context, tracking;"
        "t = json.loads(os.environ['INCLUSTER_TASK_INFO']); a = context.get_attempt();"
        "tracking.log_metric('attempt', a, step=0);"
        "info = json.loads(os.environ['INCLUSTER_EXPERIMENT_INFO']); assert info['attempt'] == a;"
        "(a == 1 and t == {'type': 'worker', 'index': 1}) and os.kill(os.getpid(), signal.SIGKILL);"
        "a == 1 and time.sleep(300)"
    )

    def change(doc):
        for replica in doc["spec"]["replicas"].values():
            replica["restartPolicy"] = "Never"
            replica["template"]["spec"]["containers"][0]["command"] = ["python", "-c", program]
        # allWorkers: the workers finish attempt 2 before cleanup may stop them.
        doc["spec"]["runPolicy"] = {
            "failurePolicy": {"restartExperiment": True, "maxRestarts": 1},
            "successPolicy": "allWorkers",
        }

    name = apply(stack, tmp_path, namespace, change)
    assert stack.wait_finished(name, namespace) == "Succeeded"
    status = stack.experiment(name, namespace)["status"]
    assert (status["attempt"], status["experimentRestarts"]) == (2, 1)
    if not isinstance(stack, DevStack):
        return
    outputs = stack.outputs_dir(status["outputsPath"].removeprefix("/outputs/"))

    def attempts(file):
        return [e.value for e in read_events(file) if isinstance(e, Metric)]

    assert attempts(outputs / "events" / "worker-1.jsonl") == [1]
    assert attempts(outputs / "events" / "worker-1.attempt-2.jsonl") == [2]
    assert attempts(outputs / "events" / "master-0.attempt-2.jsonl") == [2]


def test_failing_worker_fails_the_experiment_naming_the_replica(stack, namespace, tmp_path):
    exit_1_on_worker_1 = (
        "import json, os, sys; t = json.loads(os.environ['INCLUSTER_TASK_INFO']);"
        "sys.exit(1 if t['index'] == 1 else 0)"
    )

    def change(doc):
        replicas = doc["spec"]["replicas"]
        worker = replicas["worker"]["template"]["spec"]["containers"][0]
        worker["command"] = ["python", "-c", exit_1_on_worker_1]
        master = replicas["master"]["template"]["spec"]["containers"][0]
        master["command"] = ["python", "-c", "import time; time.sleep(300)"]
        replicas["worker"]["restartPolicy"] = "Never"
        doc["spec"]["runPolicy"] = {"backoffLimit": 0}

    name = apply(stack, tmp_path, namespace, change)
    assert stack.wait_finished(name, namespace) == "Failed"
    failed = condition(stack.experiment(name, namespace)["status"], "Failed")
    assert f"{name}-worker-1" in failed["message"]
    assert "exit code 1" in failed["message"]
    assert sys.executable  # the image's python on a real cluster, ours here


def _events(run_dir):
    return {p.name: p.read_bytes() for p in (run_dir / "events").iterdir()}


def test_a_recreated_experiment_is_a_new_run_and_a_ref_reads_the_latest(
    stack, namespace, tmp_path, capsys
):
    """Delete and re-create: two runs side by side, the first one's events untouched."""
    if not isinstance(stack, DevStack):
        pytest.skip("reads the outputs on this machine (the local pod runner's hostPath)")
    from incluster import cli

    name = apply(stack, tmp_path, namespace)
    assert stack.wait_finished(name, namespace) == "Succeeded"
    first = stack.experiment(name, namespace)
    run1 = first["status"]["runId"]
    assert run1 == first["metadata"]["uid"]
    run1_dir = stack.outputs_dir(first["status"]["outputsPath"].removeprefix("/outputs/"))
    before = _events(run1_dir)
    assert len(before) == 4

    stack.kubectl("delete", "xp", name, "-n", namespace, "--wait=true")
    apply(stack, tmp_path, namespace)
    assert stack.wait_finished(name, namespace) == "Succeeded"
    second = stack.experiment(name, namespace)["status"]
    run2 = second["runId"]
    assert run2 != run1
    run2_dir = stack.outputs_dir(second["outputsPath"].removeprefix("/outputs/"))
    assert run2_dir.parent == run1_dir.parent
    assert _events(run1_dir) == before  # byte for byte
    assert len(_events(run2_dir)) == 4

    capsys.readouterr()
    assert cli.main(["metrics", str(run1_dir.parent)]) == 0
    shown = capsys.readouterr().out
    assert run1 in shown
    assert f"showing run {run2}, the latest" in shown

    # A ref to the experiment mounts its current run: the second one.
    read = (
        "import json, os, pathlib; from incluster import Experiment as X;"
        "(ref,) = X.get_outputs_refs_paths()['experiments'];"
        "out = pathlib.Path(X.get_outputs_path()); out.mkdir(parents=True, exist_ok=True);"
        "(out / 'ref.json').write_text(json.dumps(sorted(os.listdir(pathlib.Path(ref, 'events')))))"
    )

    def reader(doc):
        doc["metadata"]["name"] = "reader"
        master = doc["spec"]["replicas"]["master"]
        master["template"]["spec"]["containers"][0]["command"] = [sys.executable, "-c", read]
        doc["spec"]["replicas"] = {"master": master}
        doc["spec"]["outputsRefs"] = {"experiments": [name]}

    apply(stack, tmp_path, namespace, reader)
    assert stack.wait_finished("reader", namespace) == "Succeeded"
    status = stack.experiment("reader", namespace)["status"]
    assert status["outputsRefsRuns"] == {name: run2}
    out = stack.outputs_dir(status["outputsPath"].removeprefix("/outputs/"))
    assert json.loads((out / "ref.json").read_text()) == sorted(_events(run2_dir))


#: The master exits 0 only if the env values (expanded by the kubelet, or the pod runner as
#: one) equal the context file's (never expanded). No `$` in the command: the kubelet
#: expands command and args too.
SAME_AS_FILE = (
    "import json, os, sys, incluster; e = incluster.Experiment();"
    "doc = json.load(open(os.path.join(os.environ['INCLUSTER_CONTEXT_DIR'], 'context.json')));"
    "ok = e.get_declarations() == doc['declarations'] and e.get_log_level() == doc['logLevel'];"
    "print('declarations', json.dumps(e.get_declarations()), e.get_log_level());"
    "sys.exit(0 if ok else 1)"
)
DOLLARS = {"password": "pa$$word", "ref": "$(INCLUSTER_CONTEXT_DIR)", "lone": "$", "x": "$(X"}


def test_hyperparameters_with_dollars_reach_the_process_unchanged(stack, namespace, tmp_path):
    def change(doc):
        replicas = doc["spec"]["replicas"]
        doc["spec"]["replicas"] = {"master": replicas["master"]}
        container = replicas["master"]["template"]["spec"]["containers"][0]
        container["command"] = ["python", "-c", SAME_AS_FILE]
        doc["spec"]["declarations"] = DOLLARS
        doc["spec"]["logLevel"] = "$(HOME)"

    name = apply(stack, tmp_path, namespace, change)
    assert stack.wait_finished(name, namespace) == "Succeeded"
