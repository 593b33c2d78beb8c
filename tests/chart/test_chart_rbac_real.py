"""With only the chart's RBAC, on a real API server, the operator runs an experiment's whole life.

The operator process runs with the chart's Deployment command and env and a token of the
chart's own ServiceAccount, so kube-apiserver's RBAC authorizer (ClusterRoleBindings and
RoleBindings included) decides every request. The life includes a report through the
report API, over TLS with the chart's generated certificate, verified for the report
Service's name. The audit log then says what it sent: no request was refused, each is
granted by the rendered rules, and every granted right was used (exact both ways; the
life has an operator restart, so the adoption of existing children is in it too).
"""

from __future__ import annotations

import json
import socket
import ssl
from base64 import b64decode
from pathlib import Path
from typing import Any

import helm_python
import kubernetes
import pytest
import yaml

from devcluster import audit
from devcluster.testing import Cluster, wait_for
from tests.chart.conftest import operator_process
from tests.chart.manifests import UNEXERCISED, of_kind, one, rbac_grants, render_manifests

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "incluster.dev", "v1alpha1", "experiments"
#: This test's own writes (the user creating the Experiment, the kubelet reporting pods)
#: are the admin's and so never in the ServiceAccount's requests.


def service_account_kubeconfig(cluster: Cluster, account: str, path: Path) -> Path:
    """A kubeconfig for the ServiceAccount: the cluster's server and CA, a bound token."""
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = (
        kubernetes.client.CoreV1Api()
        .create_namespaced_service_account_token(account, cluster.namespace, request)
        .status.token
    )
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    admin["users"] = [{"name": admin["users"][0]["name"], "user": {"token": token}}]
    path.write_text(yaml.safe_dump(admin))
    path.chmod(0o600)
    return path


def kubelet(cluster: Cluster, pod: str, phase: str, exit_code: int | None = None) -> None:
    state: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    if exit_code is not None or phase in ("Succeeded", "Failed"):
        state = {"terminated": {"exitCode": exit_code or 0, "reason": "Completed"}}
    status = {
        "phase": phase,
        "containerStatuses": [
            {"name": "main", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
             "state": state}
        ],
    }  # fmt: skip
    kubernetes.client.CoreV1Api().patch_namespaced_pod_status(
        pod, cluster.namespace, {"status": status}
    )


def pod_uid(cluster: Cluster, name: str) -> str | None:
    try:
        return str(
            kubernetes.client.CoreV1Api().read_namespaced_pod(name, cluster.namespace).metadata.uid
        )
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise


def experiment_status(cluster: Cluster, name: str) -> dict[str, Any] | None:
    try:
        found = kubernetes.client.CustomObjectsApi().get_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, name
        )
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return dict(found.get("status") or {})


def podgroups_served() -> bool:
    try:
        kubernetes.client.CustomObjectsApi().list_cluster_custom_object(
            "scheduling.x-k8s.io", "v1alpha1", "podgroups"
        )
    except kubernetes.client.ApiException:
        return False
    return True


def experiment_phase(cluster: Cluster, name: str) -> str | None:
    try:
        found = kubernetes.client.CustomObjectsApi().get_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, name
        )
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return "gone"
        raise
    return (found.get("status") or {}).get("phase")


def report_as_pod(manifests: list[dict[str, Any]], cluster: Cluster, port: int, pod: str) -> int:
    """PUT /v1/tracking as the pod (its projected token), TLS-verified for the Service name.

    The Service's DNS name does not resolve here, so the connection goes to 127.0.0.1 and
    the certificate is checked against the name the pods use (``INCLUSTER_OPERATOR_REPORT_URL``).
    """
    core = kubernetes.client.CoreV1Api()
    uid = core.read_namespaced_pod(pod, cluster.namespace).metadata.uid
    token = core.create_namespaced_service_account_token(
        "default",
        cluster.namespace,
        kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(
                audiences=["incluster.dev"],
                expiration_seconds=600,
                bound_object_ref=kubernetes.client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=pod, uid=uid
                ),
            )
        ),
    ).status.token
    ca = b64decode(one(manifests, "Secret")["data"]["ca.crt"]).decode()
    env = {
        e["name"]: e["value"]
        for e in one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    host = env["INCLUSTER_OPERATOR_REPORT_URL"].split("//", 1)[1].rsplit(":", 1)[0]
    body = json.dumps({"tracking": {"updatedAt": "2026-01-01T00:00:00Z"}}).encode()
    request = (
        f"PUT /v1/tracking HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    context = ssl.create_default_context(cadata=ca)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(request)
        answer = tls.recv(65536).decode()
    return int(answer.split(" ", 2)[1])


def test_the_charts_rights_suffice_and_every_request_is_granted(
    cluster: Cluster,
    chart: helm_python.Chart,
    installed: tuple[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    if cluster.audit_log is None:
        pytest.skip("reads the session control plane's audit log")
    release, values = installed
    manifests = render_manifests(chart, values, release=release, namespace=cluster.namespace)
    account = one(manifests, "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{cluster.namespace}:{account}"
    kubeconfig = service_account_kubeconfig(cluster, account, tmp_path / "operator.kubeconfig")

    # A gang-scheduled Experiment: the operator creates its PodGroup (upstream's API).
    podgroups = Path(__file__).resolve().parents[1] / "operator_e2e" / "crds"
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f",
        str(podgroups / "scheduler-plugins-podgroups.yaml"),
    )  # fmt: skip
    wait_for(lambda: podgroups_served(), timeout=30, message="the PodGroup API served")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with operator_process(manifests, values, kubeconfig, tmp_path, report_port=port):
        container = {"name": "main", "image": "python:3.11-slim", "command": ["true"]}
        template = {"spec": {"containers": [container]}}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Experiment",
            "metadata": {"name": "rb"},
            "spec": {
                "project": "rbac",
                "replicas": {
                    "master": {"replicas": 1, "template": template},
                    "worker": {"replicas": 1, "restartPolicy": "ExitCode", "template": template},
                },
                "runPolicy": {"ttlSecondsAfterFinished": 1},
                "schedulingPolicy": {"scheduler": "scheduler-plugins"},
            },
        }
        kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, body
        )
        first = wait_for(lambda: pod_uid(cluster, "rb-worker-0"), timeout=30, message="worker")
        wait_for(lambda: pod_uid(cluster, "rb-master-0"), timeout=30, message="master")
    # A restart: the new operator adopts the Service and ConfigMap (a create answered 409,
    # then a get), which is what the `get` on them is for.
    with operator_process(manifests, values, kubeconfig, tmp_path, report_port=port):
        # The master reports: a TokenReview, a pod read, a status write, all as the chart's
        # ServiceAccount.
        assert report_as_pod(manifests, cluster, port, "rb-master-0") == 202
        wait_for(
            lambda: "tracking" in (experiment_status(cluster, "rb") or {}),
            timeout=30,
            message="the summary folded into the status",
        )
        kubelet(cluster, "rb-worker-0", "Failed", exit_code=137)
        wait_for(
            lambda: pod_uid(cluster, "rb-worker-0") not in (None, first),
            timeout=30,
            message="the killed worker recreated",
        )
        kubelet(cluster, "rb-worker-0", "Succeeded")
        kubelet(cluster, "rb-master-0", "Succeeded")
        wait_for(
            lambda: experiment_phase(cluster, "rb") == "gone",
            timeout=60,
            message="Succeeded, then deleted by its TTL",
        )

    sent = [r for r in audit.requests(cluster.audit_log) if r.user == user]
    refused = sorted({(r.verb, r.group, r.resource, r.code) for r in sent if r.code == 403})
    assert refused == [], "requests the chart's RBAC refused"
    used = {(r.group, r.resource, r.verb) for r in sent}
    assert (GROUP, PLURAL, "delete") in used  # the scenario reached the TTL
    assert ("", "pods", "create") in used
    assert ("scheduling.x-k8s.io", "podgroups", "create") in used
    roles = of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")
    granted = set().union(*(rbac_grants(role["rules"]) for role in roles))
    assert used - granted == set(), "requests outside the rendered rules"
    unused = granted - used - UNEXERCISED
    assert unused == set(), "rights the chart grants and the operator never uses"
