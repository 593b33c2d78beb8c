"""The hostile-pod suite: from inside a replica, with every credential the pod has.

A pod has one credential from incluster: its projected token (audience ``incluster.dev``),
minted here as a kubelet would. With it the pod tries to rewrite its Experiment (spec,
status, metadata, finalizers), others' Experiments, create pods and read Secrets through
the Kubernetes API, and to misuse the operator's report API. Everything is refused,
nothing changes, and the experiment still ends on its own terms; what it is allowed to
do (report as the reporter, read declared references) works over verified TLS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import requests
from incluster import contract
from incluster.client import ApiError, AuthError, Client
from incluster.tracking.sync import SummarySync
from operator_e2e_harness import Kube, Running, experiment, replica
from report_helpers import pod_context, pod_token, report_url

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster

SUMMARY = {"metrics": {"loss": {"value": 0.5, "step": 3}}, "updatedAt": "2026-01-01T00:00:00Z"}


def _client(kube: Kube, name: str, pod: str, tmp_path: Path) -> Client:
    directory = pod_context(kube, name, pod, tmp_path / pod)
    return Client(
        base_url=report_url(directory),
        token_path=directory / contract.DIR_TOKEN / contract.FILE_TOKEN,
        ca_path=directory / contract.FILE_REPORT_CA,
        retries=0,
    )


def _start(kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    manifest = experiment(name, {"master": replica(), "worker": replica(2)})
    manifest["spec"].update(spec)
    kube.create(manifest)
    kube.wait_pods(name, 3)
    kube.set_pods(name, "Running")
    kube.wait_phase(name, "Running")
    found = kube.get(name)
    assert found is not None
    return found


def _pod_uid(kube: Kube, name: str) -> str:
    uid: str = kube.core.read_namespaced_pod(name, kube.namespace).metadata.uid
    return uid


def _api(kube: Kube, token: str, method: str, path: str, body: Any = None) -> int:
    """A raw call to the Kubernetes API with the pod's token: the status code."""
    configuration = kube.client.configuration
    verify: Any = configuration.ssl_ca_cert or False
    response = requests.request(
        method,
        configuration.host + path,
        json=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json",
        },
        verify=verify if configuration.host.startswith("https") else True,
        timeout=10,
    )
    return response.status_code


def test_the_reporter_reports_and_reads_what_it_declared(kube: Kube, tmp_path: Path) -> None:
    prev = kube.create(experiment("prev", {"master": replica()}))
    kube.wait_pods("prev", 1)
    _start(kube, "rep", outputsRefs={"experiments": ["prev"]})
    client = _client(kube, "rep", "rep-master-0", tmp_path)
    client.report_tracking(SUMMARY)
    kube.wait_status(
        "rep", lambda s: s.get("tracking") == SUMMARY, "tracking folded into the status"
    )
    mine = client.get_experiment()
    assert mine["metadata"]["name"] == "rep"
    assert mine["spec"]["replicas"]["worker"]["replicas"] == 2
    ref = client.get_reference("prev")
    run = prev["metadata"]["uid"]  # each Experiment object is one run
    assert ref.outputs_path == f"/outputs/{kube.namespace}/tests/prev/{run}"
    # A later, smaller summary replaces the whole document: dropped entries leave.
    client.report_tracking({"updatedAt": "2026-01-02T00:00:00Z"})
    kube.wait_status(
        "rep",
        lambda s: s.get("tracking") == {"updatedAt": "2026-01-02T00:00:00Z"},
        "the dropped metric left the status",
    )


def test_the_pods_token_is_no_kubernetes_credential(kube: Kube, tmp_path: Path) -> None:
    before = _start(kube, "hx")
    kube.create(experiment("other", {"master": replica()}))
    kube.wait_pods("other", 1)
    token = pod_token(kube, "hx-master-0")
    base = f"/apis/incluster.dev/v1alpha1/namespaces/{kube.namespace}/experiments"
    evil_template = {"spec": {"serviceAccountName": "default", "containers": []}}
    attempts = [
        ("PATCH", f"{base}/hx", {"spec": {"replicas": {"worker": {"template": evil_template}}}}),
        ("PATCH", f"{base}/hx/status", {"status": {"phase": "Succeeded"}}),
        ("PATCH", f"{base}/hx", {"metadata": {"finalizers": []}}),
        ("PATCH", f"{base}/other", {"spec": {"declarations": {"x": 1}}}),
        ("PATCH", f"{base}/other/status", {"status": {"phase": "Failed"}}),
        ("GET", f"{base}/hx", None),
        ("GET", f"/api/v1/namespaces/{kube.namespace}/secrets", None),
        ("POST", f"/api/v1/namespaces/{kube.namespace}/pods", {"metadata": {"name": "x"}}),
        ("DELETE", f"{base}/hx", None),
    ]
    for method, path, body in attempts:
        assert _api(kube, token, method, path, body) == 401, (method, path)
    # The pod's other credential, its ServiceAccount's own token (automount), gets nothing
    # from incluster either: no Role, no RoleBinding was created for it.
    automount = kube.core.create_namespaced_service_account_token(
        "default",
        kube.namespace,
        kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(
                audiences=[],
                bound_object_ref=kubernetes.client.V1BoundObjectReference(
                    api_version="v1",
                    kind="Pod",
                    name="hx-master-0",
                    uid=_pod_uid(kube, "hx-master-0"),
                ),
            )
        ),
    ).status.token
    for method, path, body in attempts:
        assert _api(kube, automount, method, path, body) == 403, (method, path)
    after = kube.get("hx")
    assert after is not None
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("finalizers") == before["metadata"].get("finalizers")
    assert kube.status("hx")["phase"] == "Running"
    # ... and the experiment still ends on its own terms.
    kube.set_pod("hx-master-0", "Succeeded")
    kube.wait_phase("hx", "Succeeded")


def test_the_experiment_still_ends_by_deadline_and_deletion(kube: Kube, tmp_path: Path) -> None:
    manifest = experiment("hl", {"master": replica()}, activeDeadlineSeconds=3)
    kube.create(manifest)
    kube.wait_pods("hl", 1)
    kube.set_pods("hl", "Running")
    kube.wait_phase("hl", "Running")
    token = pod_token(kube, "hl-master-0")
    base = f"/apis/incluster.dev/v1alpha1/namespaces/{kube.namespace}/experiments/hl"
    assert _api(kube, token, "PATCH", base, {"spec": {"runPolicy": {}}}) == 401
    assert _api(kube, token, "PATCH", base + "/status", {"status": {"phase": "Running"}}) == 401
    failed = kube.wait_phase("hl", "Failed", timeout=20)
    assert any(c.get("reason") == "DeadlineExceeded" for c in failed["conditions"])
    assert _api(kube, token, "PATCH", base, {"metadata": {"finalizers": None}}) == 401
    kube.delete("hl")
    wait_for(lambda: kube.get("hl") is None, timeout=20, message="the experiment deleted")


def test_the_report_api_refuses_what_a_pod_may_not_do(kube: Kube, tmp_path: Path) -> None:
    _start(kube, "hy")
    kube.create(experiment("hz", {"master": replica()}))
    kube.wait_pods("hz", 1)
    reporter = _client(kube, "hy", "hy-master-0", tmp_path)
    worker = _client(kube, "hy", "hy-worker-1", tmp_path)
    url = reporter.base_url
    with pytest.raises(AuthError) as refused:
        worker.report_tracking(SUMMARY)
    assert refused.value.status == 403
    with pytest.raises(AuthError) as refused:
        reporter.get_reference("hz")  # exists, but hy never declared it
    assert refused.value.status == 403

    def put(body: bytes, token: str | None = reporter.token()) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.put(
            url + contract.REPORT_PATH_TRACKING,
            data=body,
            headers=headers,
            verify=str(reporter.ca_path),
            timeout=10,
        )

    assert put(json.dumps({"tracking": SUMMARY}).encode(), token=None).status_code == 401
    assert put(json.dumps({"tracking": SUMMARY}).encode(), token="forged").status_code == 401
    assert put(b"x" * (65 * 1024)).status_code == 413
    assert put(b"{not json").status_code == 400
    assert put(b'{"tracking": {"metrics": "\\ud800"}}').status_code == 400
    deep = b'{"tracking": {"metrics": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    assert put(deep).status_code == 400
    # The request cannot name another experiment: identity comes from the pod alone.
    other = json.dumps({"tracking": SUMMARY, "experiment": "hz", "namespace": "kube-system"})
    assert put(other.encode()).status_code == 400
    hz = _client(kube, "hz", "hz-master-0", tmp_path)
    hz.report_tracking(SUMMARY)
    kube.wait_status("hz", lambda s: s.get("tracking") == SUMMARY, "hz's own summary")
    assert "tracking" not in kube.status("hy")
    # Not over plain HTTP, and not against any other CA.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + contract.REPORT_PATH_EXPERIMENT, timeout=10)


def test_a_deleted_pods_token_and_a_finished_experiment_are_refused(
    kube: Kube, tmp_path: Path
) -> None:
    _start(kube, "hd")
    reporter = _client(kube, "hd", "hd-master-0", tmp_path)
    reporter.report_tracking(SUMMARY)  # the review is now cached
    kube.core.delete_namespaced_pod("hd-master-0", kube.namespace)
    wait_for(lambda: "hd-master-0" not in kube.pods("hd"), message="pod gone")

    def refused() -> bool:
        try:
            reporter.report_tracking(SUMMARY)
        except AuthError as exc:
            return exc.status == 401
        return False

    wait_for(refused, timeout=5, message="the deleted pod's token refused")
    assert refused()
    kube.create(experiment("hf", {"master": replica()}))
    kube.wait_pods("hf", 1)
    done = _client(kube, "hf", "hf-master-0", tmp_path)
    kube.set_pod("hf-master-0", "Succeeded")
    kube.wait_phase("hf", "Succeeded")
    with pytest.raises(ApiError) as finished:
        done.report_tracking(SUMMARY)
    assert finished.value.status == 409
    assert "tracking" not in kube.status("hf")


def test_reports_are_rate_limited_per_experiment(kube: Kube, tmp_path: Path) -> None:
    _start(kube, "hr")
    reporter = _client(kube, "hr", "hr-master-0", tmp_path)
    statuses = []
    for _ in range(30):
        try:
            reporter.report_tracking(SUMMARY)
            statuses.append(202)
        except ApiError as exc:
            statuses.append(exc.status)
    assert statuses[0] == 202
    assert 429 in statuses


def test_the_summary_converges_after_an_operator_outage(
    kube: Kube, running: Running, tmp_path: Path
) -> None:
    _start(kube, "ho")
    client = _client(kube, "ho", "ho-master-0", tmp_path)
    version = [1]
    sync = SummarySync(
        lambda: version[0],
        lambda: {"metrics": {"loss": {"value": 0.25, "step": version[0]}}},
        lambda: client,
        interval=0.1,
    ).start()
    try:
        kube.wait_status(
            "ho", lambda s: "loss" in (s.get("tracking") or {}).get("metrics", {}), "first"
        )
        with running.operator.stopped():
            version[0] = 2  # reported while the operator is down (and the port changes)
        kube.wait_status(
            "ho",
            lambda s: (s.get("tracking") or {}).get("metrics", {}).get("loss", {}).get("step") == 2,
            "the summary after the restart",
        )
    finally:
        sync.close(timeout=1)
