"""Object semantics: each test covers one gap of kmock 0.8 listed in DESIGN.md section 5."""

from __future__ import annotations

import json
from typing import Any

import kmock
import kubernetes
import pytest
import requests
from emulator_crd import GROUP, PLURAL, VERSION, widget

from devcluster.testing import Cluster, wait_for


@pytest.fixture
def http(cluster: Cluster) -> requests.Session:
    """Raw HTTP to the emulator (skips on a real cluster, which needs credentials)."""
    cluster.emulator  # noqa: B018  (skips the test on a real cluster)
    session = requests.Session()
    session.headers["Content-Type"] = "application/json"
    return session


def url(cluster: Cluster, path: str) -> str:
    return cluster.url + path


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_core_discovery_and_namespace_list_are_well_formed(
    cluster: Cluster, http: requests.Session
) -> None:
    assert http.get(url(cluster, "/api/v1")).json()["groupVersion"] == "v1"
    namespaces = http.get(url(cluster, "/api/v1/namespaces"))
    assert namespaces.status_code == 200
    body = namespaces.json()
    assert body["kind"] == "NamespaceList"
    names = {item["metadata"]["name"] for item in body["items"]}
    assert {"default", "kube-system", cluster.namespace} <= names
    groups = {g["name"] for g in http.get(url(cluster, "/apis")).json()["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io"} <= groups


def test_objects_get_uid_resource_version_timestamp_generation_and_generate_name(
    cluster: Cluster,
) -> None:
    core = kubernetes.client.CoreV1Api()
    first = core.create_namespaced_config_map(
        cluster.namespace, {"metadata": {"generateName": "gen-"}, "data": {"a": "1"}}
    )
    second = core.create_namespaced_secret(cluster.namespace, {"metadata": {"name": "s"}})
    meta = first.metadata
    assert meta.name.startswith("gen-")
    assert len(meta.name) == len("gen-") + 5
    assert meta.uid
    assert meta.uid != second.metadata.uid
    assert meta.creation_timestamp is not None
    # One counter for every resource: a later write anywhere has a larger resourceVersion.
    assert int(second.metadata.resource_version) > int(meta.resource_version)


def test_generation_bumps_on_spec_changes_only(cluster: Cluster, widgets: Any) -> None:
    ns = cluster.namespace
    created = widgets.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("g", a=1))
    assert created["metadata"]["generation"] == 1
    labelled = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "g", {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    changed = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "g", {"spec": {"a": 2}}
    )
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(
        labelled["metadata"]["resourceVersion"]
    )


def test_create_on_an_existing_name_is_409(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    core.create_namespaced_config_map(cluster.namespace, cm("dup", a="1"))
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.create_namespaced_config_map(cluster.namespace, cm("dup", a="2"))
    assert raised.value.status == 409
    assert core.read_namespaced_config_map("dup", cluster.namespace).data == {"a": "1"}


def test_put_with_a_stale_resource_version_is_409(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    old = core.create_namespaced_config_map(cluster.namespace, cm("put", a="1"))
    body = {
        **cm("put", a="2"),
        "metadata": {"name": "put", "resourceVersion": old.metadata.resource_version},
    }
    fresh = core.replace_namespaced_config_map("put", cluster.namespace, body)
    assert fresh.data == {"a": "2"}
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.replace_namespaced_config_map("put", cluster.namespace, {**body, "data": {"a": "3"}})
    assert raised.value.status == 409
    assert core.read_namespaced_config_map("put", cluster.namespace).data == {"a": "2"}


def test_json_patch_with_a_failing_test_is_422_and_changes_nothing(
    cluster: Cluster, http: requests.Session
) -> None:
    path = url(cluster, f"/api/v1/namespaces/{cluster.namespace}/configmaps")
    created = http.post(path, json=cm("jp", a="1")).json()
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "999999"},
        {"op": "replace", "path": "/data/a", "value": "2"},
    ]
    headers = {"Content-Type": "application/json-patch+json"}
    failed = http.patch(f"{path}/jp", data=json.dumps(ops), headers=headers)
    assert failed.status_code == 422
    ops[0]["value"] = created["metadata"]["resourceVersion"]
    patched = http.patch(f"{path}/jp", data=json.dumps(ops), headers=headers)
    assert patched.status_code == 200
    assert patched.json()["data"] == {"a": "2"}


def test_merge_patch_deletes_keys_set_to_null(cluster: Cluster, http: requests.Session) -> None:
    path = url(cluster, f"/api/v1/namespaces/{cluster.namespace}/configmaps")
    http.post(path, json=cm("mp", a="1", b="2"))
    headers = {"Content-Type": "application/merge-patch+json"}
    patched = http.patch(f"{path}/mp", json={"data": {"a": None, "c": "3"}}, headers=headers)
    assert patched.json()["data"] == {"b": "2", "c": "3"}


def test_strategic_merge_patch_merges_lists_by_key_and_deletes(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    pod = {
        "metadata": {"name": "smp"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "a",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                },
                {"name": "side", "image": "b"},
            ],
            "volumes": [{"name": "v1", "emptyDir": {}}],
        },
    }
    core.create_namespaced_pod(cluster.namespace, pod)
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
                },
                {"name": "side", "$patch": "delete"},
            ],
            "volumes": [{"name": "v2", "emptyDir": {}}],
        }
    }
    patched = core.patch_namespaced_pod("smp", cluster.namespace, patch)
    assert patched.status.phase == "Pending"
    containers = patched.spec.containers
    assert [c.name for c in containers] == ["main"]
    assert containers[0].image == "a"
    assert [(e.name, e.value) for e in containers[0].env] == [("A", "1"), ("C", "3")]
    assert [v.name for v in patched.spec.volumes] == ["v1", "v2"]


def test_strategic_merge_patch_on_a_custom_resource_is_415(
    cluster: Cluster, http: requests.Session, widgets: Any
) -> None:
    widgets.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL, widget("s"))
    path = url(cluster, f"/apis/{GROUP}/{VERSION}/namespaces/{cluster.namespace}/{PLURAL}/s")
    headers = {"Content-Type": "application/strategic-merge-patch+json"}
    assert http.patch(path, json={"spec": {"a": 1}}, headers=headers).status_code == 415


def test_status_is_a_real_subresource(cluster: Cluster, widgets: Any) -> None:
    ns = cluster.namespace
    created = widgets.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, {**widget("st", a=1), "status": {"phase": "Forged"}}
    )
    assert "status" not in created  # ignored on create
    main = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "st", {"spec": {"a": 2}, "status": {"phase": "Ignored"}}
    )
    assert main["spec"] == {"a": 2}
    assert "status" not in main
    status = widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "st", {"spec": {"a": 3}, "status": {"phase": "Ready"}}
    )
    assert status["status"] == {"phase": "Ready"}
    assert status["spec"] == {"a": 2}
    assert status["metadata"]["generation"] == 2  # status writes do not bump generation


def test_finalizers_hold_deletion_until_removed(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "fin", "finalizers": ["x/y"]}})
    core.delete_namespaced_config_map("fin", ns)
    held = core.read_namespaced_config_map("fin", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.read_namespaced_config_map("fin", ns)
    assert raised.value.status == 404


def test_garbage_collection_deletes_dependents_by_owner_uid(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    owner = core.create_namespaced_config_map(ns, cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret(ns, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    other = {**ref, "uid": "not-the-owner"}
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "stranger", "ownerReferences": [other]}}
    )
    core.delete_namespaced_config_map("owner", ns)

    def child_gone() -> bool:
        names = {s.metadata.name for s in core.list_namespaced_secret(ns).items}
        return "child" not in names

    wait_for(child_gone, message="the dependent Secret to be garbage-collected")
    assert core.read_namespaced_secret("stranger", ns).metadata.name == "stranger"


def test_deletecollection_honours_the_label_selector(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"app": app}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="app=x")
    left = {
        c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector="app").items
    }
    assert left == {"c"}


def test_label_and_field_selectors_filter_lists(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    for name, labels in (("l1", {"tier": "a", "x": "1"}), ("l2", {"tier": "b"}), ("l3", {})):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**query: str) -> set[str]:
        items = core.list_namespaced_config_map(ns, **query).items
        return {c.metadata.name for c in items} - {"kube-root-ca.crt"}

    assert names(label_selector="tier in (a,b)") == {"l1", "l2"}
    assert names(label_selector="tier,!x") == {"l2"}
    assert names(label_selector="tier!=a") == {"l2", "l3"}
    assert names(field_selector="metadata.name=l3") == {"l3"}
    assert names(field_selector="metadata.name!=l3", label_selector="tier=a") == {"l1"}


def test_a_bad_selector_is_400(cluster: Cluster, http: requests.Session) -> None:
    path = url(cluster, f"/api/v1/namespaces/{cluster.namespace}/configmaps")
    answer = http.get(path, params={"labelSelector": "a in (b"})
    assert answer.status_code == 400
    assert "labelSelector" in answer.json()["message"]


def test_creating_in_a_missing_namespace_is_404(cluster: Cluster) -> None:
    with pytest.raises(kubernetes.client.ApiException) as raised:
        kubernetes.client.CoreV1Api().create_namespaced_config_map("no-such-ns", cm("x"))
    assert raised.value.status == 404


def test_a_reaction_that_answers_leaves_the_state_untouched(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    emu = cluster.emulator
    core.create_namespaced_config_map(ns, cm("kept", a="1"))
    rv_before = cluster.call(lambda: emu.resource_version)
    # kmock slices count matching requests since the start: "kept" was create #0.
    cluster.call(lambda: emu["create v1/configmaps"][1:2] << 500)
    cluster.call(
        lambda: emu["update v1/configmaps"] << kmock.KubernetesError(status=409, reason="Conflict")
    )
    with pytest.raises(kubernetes.client.ApiException) as created:
        core.create_namespaced_config_map(ns, cm("refused"))
    with pytest.raises(kubernetes.client.ApiException) as patched:
        core.patch_namespaced_config_map("kept", ns, {"data": {"a": "2"}})
    assert (created.value.status, patched.value.status) == (500, 409)
    assert cluster.call(lambda: emu.stored("v1/configmaps", ns, "refused")) is None
    assert core.read_namespaced_config_map("kept", ns).data == {"a": "1"}
    assert cluster.call(lambda: emu.resource_version) == rv_before
    # The create fault was one-shot ([1:2]): the retry is stored.
    core.create_namespaced_config_map(ns, cm("refused"))


def test_request_log_is_bounded_but_every_access_is_counted(tmp_path: Any) -> None:
    from devcluster.testing import cluster as open_cluster

    with open_cluster(tmp_path, environ={}, request_log_size=5) as small:
        session = requests.Session()
        path = f"{small.url}/api/v1/namespaces/{small.namespace}/configmaps"
        for index in range(20):
            session.post(path, json=cm(f"c{index}"))
        session.get(f"{path}/c3")
        emu = small.emulator
        assert small.call(lambda: len(emu)) == 5
        log = small.call(lambda: dict(emu.access_log))
    creates = [a for a in log if a.verb == "create" and a.resource == "configmaps"]
    assert len(creates) == 1
    assert log[creates[0]] == 20
    assert ("get", "", "configmaps", small.namespace, "c3") in log


def test_an_applied_crd_becomes_discoverable_and_goes_away_on_delete(
    cluster: Cluster, http: requests.Session, widgets: Any
) -> None:
    resources = http.get(url(cluster, f"/apis/{GROUP}/{VERSION}")).json()["resources"]
    assert {r["name"] for r in resources} == {PLURAL, f"{PLURAL}/status"}
    widgets.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL, widget("d"))
    kubernetes.client.ApiextensionsV1Api().delete_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert http.get(url(cluster, f"/apis/{GROUP}/{VERSION}")).status_code == 404
    listed = http.get(url(cluster, f"/apis/{GROUP}/{VERSION}/{PLURAL}"))
    assert listed.status_code == 404


def test_token_request_answers_an_opaque_token_with_its_expiry(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    ns = cluster.namespace
    core.create_namespaced_service_account(ns, {"metadata": {"name": "runner"}})
    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "bound"}})
    request = {
        "spec": {
            "audiences": ["incluster"],
            "expirationSeconds": 900,
            "boundObjectRef": {
                "kind": "Secret",
                "apiVersion": "v1",
                "name": "bound",
                "uid": secret.metadata.uid,
            },
        }
    }
    answer = core.create_namespaced_service_account_token("runner", ns, request)
    assert answer.status.token
    assert answer.status.expiration_timestamp is not None
    assert answer.spec.expiration_seconds == 900
    with pytest.raises(kubernetes.client.ApiException) as missing:
        core.create_namespaced_service_account_token("nobody", ns, request)
    assert missing.value.status == 404


def test_token_request_below_ten_minutes_is_422(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.create_namespaced_service_account_token(
            "default", cluster.namespace, {"spec": {"expirationSeconds": 60}}
        )
    assert raised.value.status == 422
    assert "expirationSeconds" in raised.value.body


def test_fixture_sets_kubeconfig_and_the_client_default(cluster: Cluster) -> None:
    import os

    assert os.environ["KUBECONFIG"] == str(cluster.kubeconfig)
    host = kubernetes.client.Configuration.get_default_copy().host
    assert host.rstrip("/") == cluster.url.rstrip("/") or not cluster.is_emulator


def test_deleting_a_namespace_deletes_its_objects(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", cm("inside"))
    core.delete_namespace("doomed")

    def gone() -> bool:
        names = {c.metadata.name for c in core.list_config_map_for_all_namespaces().items}
        return "inside" not in names

    wait_for(gone, message="the namespace's ConfigMap to go with it")
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    assert "doomed" not in namespaces


def test_server_side_dry_run_is_refused_rather_than_applied(
    cluster: Cluster, http: requests.Session
) -> None:
    path = url(cluster, f"/api/v1/namespaces/{cluster.namespace}/configmaps")
    dry = http.post(path, json=cm("dry"), params={"dryRun": "All"})
    assert dry.status_code == 201
    assert http.get(f"{path}/dry").status_code == 404
    http.post(path, json=cm("real", a="1"))
    headers = {"Content-Type": "application/merge-patch+json"}
    refused = http.patch(
        f"{path}/real", json={"data": {"a": "2"}}, params={"dryRun": "All"}, headers=headers
    )
    assert refused.status_code == 400
    assert http.get(f"{path}/real").json()["data"] == {"a": "1"}
