"""The operator as a real kopf process in a thread, and a small kubelet stand-in for tests.

The operator runs through ``incluster_operator.__main__.operator`` (the same coroutine
``python -m incluster_operator`` runs) against the emulator, over HTTP, with its own
``kubernetes`` configuration: nothing in the process-wide client defaults is shared.
The emulator has no kubelet, so tests move pods through their phases by patching pod
status, as a kubelet would.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kubernetes
from incluster_operator.__main__ import operator
from incluster_operator.api import names
from incluster_operator.api.models import GROUP, PLURAL, VERSION
from incluster_operator.settings import Settings

from devcluster import audit
from devcluster.testing import Cluster, create_namespace, wait_for

#: How long a test waits for owner-reference garbage collection. kube-controller-manager's
#: collector learns a new CRD's resources at its next discovery sync (every 30 s).
GC_TIMEOUT = 60.0


class OperatorThread:
    """Start, stop and restart the operator; ``start`` returns once kopf is ready."""

    def __init__(self, settings: Settings, configuration: Any) -> None:
        self.settings = settings
        self.configuration = configuration
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> OperatorThread:
        self._stop = threading.Event()
        ready = threading.Event()

        def run() -> None:
            try:
                asyncio.run(
                    operator(
                        self.settings, self.configuration, stop_flag=self._stop, ready_flag=ready
                    )
                )
            except BaseException as exc:  # surfaced by stop()
                self.error = exc
                ready.set()

        self._thread = threading.Thread(target=run, name="operator", daemon=True)
        self._thread.start()
        if not ready.wait(30) or self.error is not None:
            raise RuntimeError(f"the operator did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "the operator did not stop within 30 s"
        if self.error is not None:
            raise self.error

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The operator is down inside the block and up again (a new process-like run) after."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass
class Running:
    """A module's API server and operator (the ``running`` fixture)."""

    cluster: Cluster
    operator: OperatorThread
    client: Any
    #: The module's namespaces are ``<prefix>-<random>``; its operator watches those only.
    prefix: str = "t"


def container(name: str = "main") -> dict[str, Any]:
    return {"name": name, "image": "python:3.11-slim", "command": ["python", "-c", "pass"]}


def replica(count: int = 1, restart_policy: str = "Never", port: int = 2222) -> dict[str, Any]:
    return {
        "replicas": count,
        "port": port,
        "restartPolicy": restart_policy,
        "template": {"spec": {"containers": [container()]}},
    }


def experiment(
    name: str,
    replicas: Mapping[str, dict[str, Any]] | None = None,
    **run_policy: Any,
) -> dict[str, Any]:
    """An Experiment manifest; ``run_policy`` takes camelCase keys."""
    spec: dict[str, Any] = {
        "project": "tests",
        "replicas": dict(replicas or {"master": replica()}),
    }
    if run_policy:
        spec["runPolicy"] = run_policy
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def pod_status(phase: str, exit_code: int | None = None, restarts: int = 0) -> dict[str, Any]:
    """What a kubelet reports for a one-container pod in ``phase``."""
    if phase == "Running":
        state: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    elif phase in ("Succeeded", "Failed"):
        code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
        state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    return {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "main",
                "ready": phase == "Running",
                "restartCount": restarts,
                "image": "python:3.11-slim",
                "imageID": "",
                "state": state,
            }
        ],
    }


@dataclass
class Kube:
    """A test's view of one namespace through the real ``kubernetes`` client."""

    cluster: Cluster
    namespace: str
    client: Any

    @property
    def core(self) -> Any:
        return kubernetes.client.CoreV1Api(self.client)

    @property
    def custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.client)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )
        return created

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        found = self.get(name)
        return dict((found or {}).get("status") or {})

    def pods(self, name: str) -> dict[str, Any]:
        """The experiment's pods by name (as ``V1Pod``)."""
        listed = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{names.LABEL_EXPERIMENT}={name}"
        )
        return {pod.metadata.name: pod for pod in listed.items}

    def set_pod(
        self, pod: str, phase: str, exit_code: int | None = None, restarts: int = 0
    ) -> None:
        """Play the kubelet: report ``phase`` for one pod."""
        self.core.patch_namespaced_pod_status(
            pod, self.namespace, {"status": pod_status(phase, exit_code, restarts)}
        )

    def set_pods(self, name: str, phase: str) -> None:
        for pod in self.pods(name):
            self.set_pod(pod, phase)

    def wait_status(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        message: str,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Poll the experiment's status until ``predicate`` holds; return that status."""

        def check() -> dict[str, Any] | None:
            current = self.status(name)
            return current if predicate(current) else None

        return wait_for(check, timeout=timeout, message=f"{name}: {message}")

    def wait_phase(self, name: str, phase: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.wait_status(
            name, lambda s: s.get("phase") == phase, f"phase {phase}", timeout=timeout
        )

    def wait_pods(self, name: str, count: int, timeout: float = 15.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            pods = self.pods(name)
            return pods if len(pods) == count else None

        return wait_for(check, timeout=timeout, message=f"{name}: {count} pod(s)")

    def calls(self, verb: str, resource: str, name: str | None = None) -> int:
        """API writes in this namespace (failed ones too): the emulator's access log, or the
        real control plane's audit log."""
        log = self.cluster.audit_log
        if log is not None:
            return sum(
                1
                for r in audit.requests(log, self.namespace)
                if (r.verb, r.resource) == (verb, resource) and name in (None, r.name)
            )
        return sum(
            count
            for access, count in self.cluster.emulator.access_log.items()
            if access.verb == verb
            and access.resource == resource
            and access.namespace == self.namespace
            and (name is None or access.name == name)
        )

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for condition in self.status(name).get("conditions") or []:
            if condition["type"] == type_:
                return dict(condition)
        return None

    def events(self, name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events posted on the experiment, oldest first.

        Oldest first by resourceVersion: Events are only created, and a real server's
        resourceVersions are etcd revisions, increasing with each write (names are random).
        """
        listed = self.core.list_namespaced_event(self.namespace)
        return [
            (e.type, e.reason, e.message)
            for e in sorted(listed.items, key=lambda e: int(e.metadata.resource_version))
            if e.involved_object.name == name and e.involved_object.kind == "Experiment"
        ]


def new_namespace(cluster: Cluster, client: Any, prefix: str = "t") -> str:
    """A namespace of its own per test: fault injection and counts filter on it."""
    return create_namespace(kubernetes.client.CoreV1Api(client), f"{prefix}-{secrets.token_hex(4)}")
