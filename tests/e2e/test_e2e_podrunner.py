"""The pod runner as a node: pods become processes, status comes back, as from a kubelet."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import kubernetes
import pytest
from incluster_operator.local.podrun import Backoff

from devcluster.testing import Cluster, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def core(cluster: Cluster):
    return kubernetes.client.CoreV1Api()


@pytest.fixture
def runner(cluster: Cluster, tmp_path: Path):
    """The pod runner; on the real API server, a Node of this test's own that binds pods."""
    with cluster.pod_runner(
        tmp_path / "runner",
        workdir=tmp_path,
        backoff=Backoff(0.05, 0.2),
        refresh_interval=0.2,
    ) as r:
        yield r


def pod(name, containers, **spec):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "t", "role": "worker"}},
        "spec": {"restartPolicy": "Never", "containers": containers, **spec},
    }


def py(name, code, **extra):
    return {"name": name, "image": "ignored", "command": [sys.executable, "-c", code], **extra}


def phase_of(core, ns, name):
    p = core.read_namespaced_pod(name, ns)
    return p.status.phase if p.status else None


def test_pod_runs_with_its_env_and_volumes_and_reports_success(cluster, core, runner, tmp_path):
    ns = cluster.namespace
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cfg"}, "data": {"greeting": "hello", "file.txt": "from-cm"}}
    )
    core.create_namespaced_secret(
        ns,
        {"metadata": {"name": "sec"}, "data": {"password": base64.b64encode(b"s3cret").decode()}},
    )
    code = (
        "import os, pathlib;"
        "d = pathlib.Path(os.environ['CFG_DIR']);"
        "s = pathlib.Path('/etc/secret/password'.replace('/etc/secret', os.environ['SEC_DIR']));"
        "print(os.environ['GREETING'], os.environ['PASSWORD'], os.environ['POD'],"
        " os.environ['NS'], os.environ['ROLE'], (d / 'file.txt').read_text(), s.read_text())"
    )
    env = [
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "ROLE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['role']"}}},
        {"name": "CFG_DIR", "value": "/etc/cfg"},
        {"name": "SEC_DIR", "value": "/etc/secret"},
    ]
    mounts = [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/secret"}]
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
    ]
    core.create_namespaced_pod(
        ns, pod("p1", [py("main", code, env=env, volumeMounts=mounts)], volumes=volumes)
    )
    wait_for(lambda: phase_of(core, ns, "p1") == "Succeeded", timeout=30, message="p1 Succeeded")
    status = core.read_namespaced_pod("p1", ns).status
    (c,) = status.container_statuses
    assert c.state.terminated.exit_code == 0
    assert c.state.terminated.reason == "Completed"
    assert status.pod_ip == "127.0.0.1"
    log = next((tmp_path / "runner" / "pods" / ns).glob("p1-*")) / "logs" / "main.log"
    assert log.read_text().split() == ["hello", "s3cret", "p1", ns, "worker", "from-cm", "s3cret"]


def test_failure_reports_the_exit_code(cluster, core, runner):
    ns = cluster.namespace
    core.create_namespaced_pod(ns, pod("bad", [py("main", "import sys; sys.exit(4)")]))
    wait_for(lambda: phase_of(core, ns, "bad") == "Failed", timeout=30, message="bad Failed")
    (c,) = core.read_namespaced_pod("bad", ns).status.container_statuses
    assert (c.state.terminated.exit_code, c.state.terminated.reason) == (4, "Error")


def test_pod_waits_for_a_missing_config_map_then_runs(cluster, core, runner):
    ns = cluster.namespace
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "x"}}}]
    core.create_namespaced_pod(ns, pod("waits", [py("main", "print('ran')", env=env)]))

    def waiting_reason():
        p = core.read_namespaced_pod("waits", ns)
        statuses = (p.status and p.status.container_statuses) or []
        return statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason

    assert wait_for(waiting_reason, timeout=30) == "CreateContainerConfigError"
    assert phase_of(core, ns, "waits") == "Pending"
    core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}, "data": {"x": "1"}})
    wait_for(lambda: phase_of(core, ns, "waits") == "Succeeded", timeout=30, message="ran")


def test_deleting_a_pod_kills_its_processes(cluster, core, runner, tmp_path):
    ns = cluster.namespace
    pidfile = tmp_path / "pid"
    code = (
        f"import os, pathlib, time; pathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()));"
        "time.sleep(120)"
    )
    core.create_namespaced_pod(ns, pod("long", [py("main", code)], terminationGracePeriodSeconds=5))
    wait_for(lambda: phase_of(core, ns, "long") == "Running", timeout=30, message="Running")
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=30)
    pid = int(pidfile.read_text())
    core.delete_namespaced_pod("long", ns)
    wait_for(
        lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid),
        timeout=30,
        message="the process to end",
    )


def _zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_a_changed_config_map_reaches_the_running_pod(cluster, core, runner, tmp_path):
    """As a kubelet does: the token the operator refreshes must reach the process."""
    ns = cluster.namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "live"}, "data": {"v": "one"}})
    code = (
        "import os, pathlib, time\n"
        "f = pathlib.Path(os.environ['D']) / 'v'\n"
        "first = f.read_text()\n"
        "while f.read_text() != 'two':\n"
        "    time.sleep(0.05)\n"
        "print(first, f.read_text())\n"
    )
    container = py(
        "main",
        code,
        env=[{"name": "D", "value": "/etc/live"}],
        volumeMounts=[{"name": "live", "mountPath": "/etc/live"}],
    )
    core.create_namespaced_pod(
        ns, pod("reader", [container], volumes=[{"name": "live", "configMap": {"name": "live"}}])
    )
    wait_for(lambda: phase_of(core, ns, "reader") == "Running", timeout=30, message="Running")
    core.patch_namespaced_config_map("live", ns, {"data": {"v": "two"}})
    wait_for(lambda: phase_of(core, ns, "reader") == "Succeeded", timeout=30, message="seen")
    log = next((tmp_path / "runner" / "pods" / ns).glob("reader-*")) / "logs" / "main.log"
    assert log.read_text().split() == ["one", "two"]


def test_a_pod_that_cannot_run_locally_fails_with_the_field_to_fix(cluster, core, runner):
    ns = cluster.namespace
    core.create_namespaced_pod(ns, pod("noimage", [{"name": "main", "image": "busybox"}]))
    wait_for(lambda: phase_of(core, ns, "noimage") == "Failed", timeout=30, message="Failed")
    status = core.read_namespaced_pod("noimage", ns).status
    assert status.reason == "CreateContainerConfigError"
    assert status.message.startswith("spec.containers[0].command: is required locally")
    (c,) = status.container_statuses
    assert c.state.waiting.reason == "CreateContainerConfigError"


def test_containers_can_reach_the_api_they_run_under(cluster, core, runner, tmp_path):
    if not cluster.is_emulator:
        pytest.skip("plain HTTP without credentials is the emulator's; see the bound token test")
    ns = cluster.namespace
    code = (
        "import json, os, urllib.request;"
        "url = os.environ['INCLUSTER_API_URL'] + '/api/v1/namespaces/' + os.environ['NS'];"
        "print(json.load(urllib.request.urlopen(url))['metadata']['name'],"
        " os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])"
    )
    env = [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    core.create_namespaced_pod(ns, pod("caller", [py("main", code, env=env)]))
    wait_for(lambda: phase_of(core, ns, "caller") == "Succeeded", timeout=30, message="called")
    log = next((tmp_path / "runner" / "pods" / ns).glob("caller-*")) / "logs" / "main.log"
    host, port = cluster.url.removeprefix("http://").rsplit(":", 1)
    assert log.read_text().split() == [ns, host, port]


def test_projected_token_is_bound_to_the_pod_as_a_kubelet_mints_it(cluster, core, runner, tmp_path):
    """The node mints projected ServiceAccount tokens through TokenRequest, bound to the pod.

    A TokenReview with the audience names the pod (name and uid), the way the operator's
    report API identifies a replica; deleting the pod invalidates the token.
    """
    if cluster.is_emulator:
        pytest.skip("the emulator signs no tokens and serves no TokenReview")
    ns = cluster.namespace
    volume = {
        "name": "ctx",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "incluster.dev",
                        "expirationSeconds": 600,
                        "path": "token",
                    }
                }
            ]
        },
    }
    mount = {"name": "ctx", "mountPath": "/var/run/incluster"}
    sleeper = py("main", "import time; time.sleep(60)", volumeMounts=[mount])
    created = core.create_namespaced_pod(ns, pod("holder", [sleeper], volumes=[volume]))
    wait_for(lambda: phase_of(core, ns, "holder") == "Running", timeout=30, message="running")
    token_file = next((tmp_path / "runner" / "pods" / ns).glob("holder-*")) / "volumes/ctx/token"
    token = token_file.read_text()

    def review(audience: str) -> kubernetes.client.V1TokenReviewStatus:
        body = kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=token, audiences=[audience])
        )
        return kubernetes.client.AuthenticationV1Api().create_token_review(body).status

    status = review("incluster.dev")
    assert status.authenticated
    assert status.user.username == f"system:serviceaccount:{ns}:default"
    assert status.user.extra["authentication.kubernetes.io/pod-name"] == ["holder"]
    assert status.user.extra["authentication.kubernetes.io/pod-uid"] == [created.metadata.uid]
    assert not review("another-audience").authenticated
    core.delete_namespaced_pod("holder", ns)
    wait_for(
        lambda: not review("incluster.dev").authenticated,
        timeout=30,
        message="the token to die with its pod",
    )


def test_kubectl_logs_reads_the_pods_output_through_the_api_server(cluster, core, runner):
    """kube-apiserver proxies `kubectl logs` to the node's log endpoint, as to a kubelet's."""
    if cluster.is_emulator:
        pytest.skip("the emulator proxies nothing to nodes")
    ns = cluster.namespace
    code = "print('first'); print('second')"
    core.create_namespaced_pod(ns, pod("talker", [py("main", code)]))
    wait_for(lambda: phase_of(core, ns, "talker") == "Succeeded", timeout=30, message="done")
    assert cluster.kubectl("logs", "talker").stdout.split() == ["first", "second"]
    assert cluster.kubectl("logs", "talker", "--tail=1").stdout.split() == ["second"]
    missing = cluster.kubectl("logs", "talker", "-c", "nope", check=False)
    assert missing.returncode != 0
