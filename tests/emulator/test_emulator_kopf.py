"""A tiny kopf operator runs against the emulator through the real client and survives faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import kmock
import kopf
import kubernetes
import pytest
from emulator_crd import GROUP, PLURAL, VERSION, widget
from kopf.testing import KopfRunner

from devcluster.testing import Cluster, wait_for


@pytest.fixture(autouse=True)
def default_registry() -> Iterator[None]:
    """Put kopf's default registry back: `kopf run` (KopfRunner) makes the test's the default.

    Left in place, the next operator in this worker (tests/operator_e2e runs the real one on
    the default registry) would log in to this test's long-gone emulator.
    """
    previous = kopf.get_default_registry()
    yield
    kopf.set_default_registry(previous)


def make_operator(cluster: Cluster, log: dict[str, list[str]]) -> kopf.OperatorRegistry:
    """Handlers that record what they saw and create an adopted ConfigMap per Widget."""
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(cluster.kopf_login)
    lock = threading.Lock()

    @kopf.on.create(GROUP, VERSION, PLURAL, id="created", registry=registry, backoff=0.2)
    def created(name: str, namespace: str, body: Any, patch: kopf.Patch, **_: Any) -> str:
        with lock:
            log["attempts"].append(name)
        child = {"metadata": {"name": f"{name}-child"}, "data": {"owner": name}}
        kopf.adopt(child, owner=body)
        try:
            kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, child)
        except kubernetes.client.ApiException as e:
            if e.status != 409:
                raise
        patch.status["phase"] = "Ready"
        with lock:
            log["created"].append(name)
        return "done"

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="deleted", registry=registry)
    def deleted(name: str, **_: Any) -> None:
        with lock:
            log["deleted"].append(name)

    return registry


def settings() -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    result.watching.reconnect_backoff = 0.1
    result.posting.level = 100  # no k8s Events: they are not what this test is about
    return result


def test_kopf_handles_creation_finalizers_status_and_faults(cluster: Cluster, widgets: Any) -> None:
    ns = cluster.namespace
    log: dict[str, list[str]] = {"attempts": [], "created": [], "deleted": []}
    emu = cluster.emulator
    # The first ConfigMap create answers 500 and must store nothing; kopf retries the handler.
    cluster.call(
        lambda: (
            emu["create v1/configmaps"][:1]
            << kmock.KubernetesError(status=500, reason="InternalError", message="injected")
        )
    )
    registry = make_operator(cluster, log)
    args = ["run", "--standalone", f"--namespace={ns}"]
    with KopfRunner(args, registry=registry, settings=settings()) as runner:
        widgets.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w1", size=1))
        wait_for(lambda: "w1" in log["created"], message="w1 handled")
        assert log["attempts"].count("w1") >= 2  # the 500 made the first attempt fail

        def w1_ready() -> Any:
            w1 = widgets.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w1")
            return w1 if w1.get("status", {}).get("phase") == "Ready" else None

        w1 = wait_for(w1_ready, message="w1 status patched by kopf")
        assert w1["status"]["created"] == "done"
        assert w1["metadata"]["finalizers"]  # kopf's, because of the delete handler
        child = kubernetes.client.CoreV1Api().read_namespaced_config_map("w1-child", ns)
        assert child.metadata.owner_references[0].uid == w1["metadata"]["uid"]

        # A dropped watch: kopf reconnects from its last resourceVersion and sees w2.
        assert cluster.cut_watches() >= 1
        widgets.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w2"))
        wait_for(lambda: "w2" in log["created"], message="w2 handled after a cut watch")

        # 410 Gone: the history is compacted, so kopf's resume fails and it re-lists.
        cluster.call(emu.compact)
        cluster.cut_watches()
        widgets.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("w3"))
        wait_for(lambda: "w3" in log["created"], message="w3 handled after 410 Gone")

        # Deletion waits for kopf's finalizer; the delete handler runs, then the object goes,
        # and the garbage collector removes the adopted ConfigMap.
        widgets.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w1")
        wait_for(lambda: "w1" in log["deleted"], message="w1 delete handler")
        wait_for(
            lambda: (
                cluster.call(lambda: emu.stored(f"{GROUP}/{VERSION}/{PLURAL}", ns, "w1")) is None
            ),
            message="w1 removed once its finalizer is gone",
        )
        wait_for(
            lambda: cluster.call(lambda: emu.stored("v1/configmaps", ns, "w1-child")) is None,
            message="w1-child garbage-collected",
        )
    assert runner.exception is None, runner.output
    assert log["created"].count("w1") == 1
