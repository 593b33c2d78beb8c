"""Minted tokens through plain HTTP: authenticated, then scoped by the namespace's RBAC.

The Widget stands in for an Experiment and the Role has the operator's shape (get/patch on
one named object and its status), so a pass here means the emulator enforces what
docs/security.md promises; tests/tokens checks the real rendered Role with the SDK client.
"""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
import requests
from emulator_crd import GROUP, PLURAL, VERSION, widget

from devcluster.testing import Cluster

RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def minted(cluster: Cluster, widgets: Any) -> requests.Session:
    """A session carrying a token for ServiceAccount ``runner``, bound to Secret ``bound``,
    whose Role allows get/patch on widget ``mine`` and its status only."""
    cluster.emulator  # noqa: B018  (skips the test on a real cluster)
    ns = cluster.namespace
    for name in ("mine", "theirs"):
        widgets.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget(name))
    core = kubernetes.client.CoreV1Api()
    core.create_namespaced_service_account(ns, {"metadata": {"name": "runner"}})
    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "bound"}})
    rbac = kubernetes.client.RbacAuthorizationV1Api()
    rule = {
        "apiGroups": [GROUP],
        "resources": [PLURAL, f"{PLURAL}/status"],
        "resourceNames": ["mine"],
        "verbs": ["get", "patch"],
    }
    rbac.create_namespaced_role(ns, {"metadata": {"name": "runner"}, "rules": [rule]})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "runner"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runner"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}],
        },
    )
    ref = {"kind": "Secret", "apiVersion": "v1", "name": "bound", "uid": secret.metadata.uid}
    answer = core.create_namespaced_service_account_token(
        "runner", ns, {"spec": {"boundObjectRef": ref}}
    )
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {answer.status.token}"
    return session


def widget_url(cluster: Cluster, name: str, sub: str = "") -> str:
    base = f"{cluster.url}/apis/{GROUP}/{VERSION}/namespaces/{cluster.namespace}/{PLURAL}"
    return f"{base}/{name}" + (f"/{sub}" if sub else "")


def merge(session: requests.Session, url: str, body: dict[str, Any]) -> requests.Response:
    return session.patch(
        url, json=body, headers={"Content-Type": "application/merge-patch+json"}, timeout=10
    )


def test_the_token_gets_and_patches_its_own_object_and_status(
    cluster: Cluster, minted: requests.Session
) -> None:
    assert minted.get(widget_url(cluster, "mine"), timeout=10).json()["metadata"]["name"] == "mine"
    assert merge(minted, widget_url(cluster, "mine"), {"spec": {"size": 2}}).status_code == 200
    patched = merge(minted, widget_url(cluster, "mine", "status"), {"status": {"ok": True}})
    assert patched.status_code == 200
    status = minted.get(widget_url(cluster, "mine", "status"), timeout=10).json()
    assert (status["spec"], status["status"]) == ({"size": 2}, {"ok": True})


def denied(response: requests.Response, verb: str, resource: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert f'cannot {verb} resource "{resource}"' in body["message"]
    assert "system:serviceaccount:" in body["message"]
    assert ":runner" in body["message"]


def test_everything_else_is_forbidden_and_changes_nothing(
    cluster: Cluster, minted: requests.Session
) -> None:
    ns = cluster.namespace
    denied(minted.get(widget_url(cluster, "theirs"), timeout=10), "get", PLURAL)
    denied(
        merge(minted, widget_url(cluster, "theirs", "status"), {"status": {"ok": True}}),
        "patch",
        f"{PLURAL}/status",
    )
    denied(minted.delete(widget_url(cluster, "mine"), timeout=10), "delete", PLURAL)
    denied(minted.get(widget_url(cluster, "").rstrip("/"), timeout=10), "list", PLURAL)
    denied(minted.get(f"{cluster.url}/api/v1/namespaces/{ns}/pods", timeout=10), "list", "pods")
    secret = minted.get(f"{cluster.url}/api/v1/namespaces/{ns}/secrets/bound", timeout=10)
    denied(secret, "get", "secrets")
    assert 'secrets "bound" is forbidden' in secret.json()["message"]
    theirs = cluster.call(
        lambda: cluster.emulator.stored(f"{GROUP}/{VERSION}/{PLURAL}", ns, "theirs")
    )
    assert theirs is not None
    assert "status" not in theirs
    assert minted.get(f"{cluster.url}/apis", timeout=10).status_code == 200, "discovery is open"


def test_deleting_the_bound_secret_makes_the_token_unauthorized(
    cluster: Cluster, minted: requests.Session
) -> None:
    assert minted.get(widget_url(cluster, "mine"), timeout=10).status_code == 200
    kubernetes.client.CoreV1Api().delete_namespaced_secret("bound", cluster.namespace)
    response = minted.get(widget_url(cluster, "mine"), timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)


def test_other_callers_are_not_checked(cluster: Cluster, minted: requests.Session) -> None:
    """The admin kubeconfig, no credentials and unknown bearers behave as before."""
    theirs = widget_url(cluster, "theirs")
    assert requests.get(theirs, timeout=10).status_code == 200
    unknown = {"Authorization": "Bearer not-minted-here"}
    assert requests.get(theirs, headers=unknown, timeout=10).status_code == 200
    kubernetes.client.CustomObjectsApi().get_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, PLURAL, "theirs"
    )
