"""Watch pods, run each as local processes, patch their status, stop them on delete."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from incluster import contract
from incluster_operator.local.address import replica_address
from incluster_operator.local.errors import PodSpecError
from incluster_operator.local.plan import (
    Layout,
    Node,
    PodPlan,
    inherited_env,
    plan_pod,
    refresh_files,
)
from incluster_operator.local.podrun import Backoff, PodRun
from incluster_operator.local.state import ContainerState, Phase, PodState, pod_status
from kubernetes import client, watch

from devcluster.podrunner.api import Api
from devcluster.podrunner.logs import LogServer

log = logging.getLogger("devcluster.podrunner")

#: The node name reported in ``spec.nodeName`` fieldRefs.
NODE_NAME = "devcluster"
FINISHED = ("Succeeded", "Failed")
DEFAULT_BACKOFF = Backoff()


def _key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def api_env(host_url: str) -> dict[str, str]:
    """The API's address as a kubelet injects it, plus the SDK's override for plain HTTP.

    ``KUBERNETES_SERVICE_HOST``/``PORT`` are what every pod gets; the SDK's client builds
    ``https://`` from them, but the emulator speaks plain HTTP, so ``INCLUSTER_API_URL``
    (the client's documented override) carries the exact URL.
    """
    url = urlsplit(host_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return {
        contract.ENV_KUBERNETES_SERVICE_HOST: url.hostname or "127.0.0.1",
        contract.ENV_KUBERNETES_SERVICE_PORT: str(port),
        contract.ENV_API_URL: host_url.rstrip("/"),
    }


class _StatusWriter:
    """Patches the latest state of one pod, coalescing bursts, in its own thread.

    A burst of transitions (four containers starting) becomes one or two patches, and a
    slow API never blocks the processes' threads.
    """

    def __init__(self, api: Api, namespace: str, name: str) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self._cond = threading.Condition()
        self._latest: dict[str, Any] | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"status:{name}", daemon=True)
        self._thread.start()

    def submit(self, status: dict[str, Any]) -> None:
        with self._cond:
            self._latest = status
            self._cond.notify()

    def close(self) -> None:
        """Write what is pending, then end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._latest is not None or self._closed)
                status, self._latest = self._latest, None
                closed = self._closed
            if status is not None:
                try:
                    if not self._api.patch_status(self._namespace, self._name, status):
                        return  # the pod is gone
                except Exception:  # a failed patch is retried with the next state
                    log.exception("patching status of %s/%s", self._namespace, self._name)
            if closed and status is None:
                return


class _PodWorker:
    """One pod: plan it (waiting for missing ConfigMaps/Secrets), run it, report it."""

    def __init__(self, runner: PodRunner, pod: Mapping[str, Any]) -> None:
        self._runner = runner
        self._pod = pod
        meta = pod.get("metadata") or {}
        self.namespace = str(meta.get("namespace", "default"))
        self.name = str(meta.get("name"))
        self._stopping = threading.Event()
        self._run: PodRun | None = None
        self._lock = threading.Lock()
        self._status = _StatusWriter(runner.api, self.namespace, self.name)
        self._thread = threading.Thread(target=self._main, name=f"pod:{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            run = self._run
        if run is not None:
            run.stop()
        self._thread.join()

    def _plan(self, pod_ip: str) -> PodPlan:
        return plan_pod(
            self._pod,
            self._runner.api,
            self._runner.layout,
            node=Node(pod_ip=pod_ip, node_name=self._runner.node or NODE_NAME),
            base_env=self._runner.base_env,
            workdir=self._runner.workdir,
        )

    def _waiting(self, error: PodSpecError) -> PodState:
        containers = (self._pod.get("spec") or {}).get("containers") or []
        waiting = tuple(
            ContainerState(str(c.get("name")), reason=error.reason, message=str(error))
            for c in containers
        )
        phase: Phase = "Pending" if error.retriable else "Failed"
        return PodState(phase, "127.0.0.1", (), waiting, 0.0, error.reason, str(error))

    def _main(self) -> None:
        try:
            plan = self._plan_when_ready()
            if plan is None:
                return
            address = replica_address(plan)
            if address is not None:
                plan = self._plan(address)
            with self._lock:
                if self._stopping.is_set():
                    return
                self._run = PodRun(
                    plan,
                    address or "127.0.0.1",
                    on_change=lambda s: self._status.submit(pod_status(s)),
                    backoff=self._runner.backoff,
                ).start()
            self._keep_files_fresh(plan, address or "127.0.0.1")
        except Exception:
            log.exception("running pod %s/%s", self.namespace, self.name)
        finally:
            self._status.close()

    def _keep_files_fresh(self, plan: PodPlan, pod_ip: str) -> None:
        """Until the pod ends, rewrite volume files whose source changed, as a kubelet does."""
        assert self._run is not None
        while self._run.wait(self._runner.refresh_interval) is None:
            try:
                fresh = self._plan(pod_ip)
            except PodSpecError:
                continue  # a source went away: a kubelet keeps the last content
            if fresh.files != plan.files:
                refresh_files(fresh)
                plan = fresh

    def _plan_when_ready(self) -> PodPlan | None:
        """Plan the pod; while a reference is missing, report it and retry, like a kubelet."""
        while not self._stopping.is_set():
            try:
                return self._plan("127.0.0.1")
            except PodSpecError as error:
                self._status.submit(pod_status(self._waiting(error)))
                if not error.retriable:
                    log.warning("pod %s/%s cannot run: %s", self.namespace, self.name, error)
                    return None
            self._stopping.wait(self._runner.retry_interval)
        return None


class PodRunner:
    """Runs the pods of the API it watches; ``start()``, then ``stop()`` (or a ``with``).

    On the emulator (``node=None``) it runs every pod, as the emulator has no scheduler.
    On a real API server it is the node named ``node``: it registers that Node, binds the
    pods that have none and no scheduling gates (kube-scheduler's job), runs only pods
    bound to it, and confirms their deletion once their processes stopped (a kubelet's
    job). ``namespace`` limits it to one namespace, so parallel tests each have a node.

    Pods already finished (phase Succeeded/Failed) are left alone, so restarting the
    runner does not re-run them. Volume files follow their sources every
    ``refresh_interval`` seconds (a refreshed token reaches the running pod). ``workdir``
    is the working directory of containers without ``workingDir`` (the demo uses the
    repository, so ``python examples/x.py`` resolves); ``root`` holds the pod
    directories (``root/pods/<ns>/<pod>-<uid>/logs``). ``host_paths`` maps a hostPath
    (and everything under it) to a directory on this machine; other hostPaths live under
    ``root/hostpath/``.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        root: Path,
        *,
        workdir: Path | None = None,
        host_paths: Mapping[str, Path] | None = None,
        retry_interval: float = 0.5,
        refresh_interval: float = 10.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        node: str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.api = Api(api_client)
        self.node = node
        self.namespace = namespace
        self.layout = Layout(root, host_paths=dict(host_paths or {}))
        self.retry_interval = retry_interval
        self.refresh_interval = refresh_interval
        self.backoff = backoff
        self.workdir = workdir
        self.base_env = {**inherited_env(), **api_env(api_client.configuration.host)}
        self._workers: dict[str, _PodWorker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._logs: LogServer | None = None
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)

    @classmethod
    def for_url(cls, url: str, root: Path, **options: Any) -> PodRunner:
        """A runner for the API at ``url`` without credentials (the emulator)."""
        configuration = client.Configuration()
        configuration.host = url
        return cls(client.ApiClient(configuration), root, **options)

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PodRunner:
        if self.node is not None:
            port = 0
            client_ca = self.api.core.api_client.configuration.ssl_ca_cert
            if client_ca:  # the API server's kubelet client certificate is the CA's
                self._logs = LogServer(self.layout.root, client_ca, self._is_running)
                port = self._logs.start()
            self.api.register_node(self.node, "127.0.0.1", kubelet_port=port)
        self._thread.start()
        return self

    def _is_running(self, namespace: str, name: str) -> bool:
        with self._lock:
            return any((w.namespace, w.name) == (namespace, name) for w in self._workers.values())

    def stop(self) -> None:
        """Stop watching and stop every pod's processes."""
        self._stopping.set()
        w = self._watch
        if w is not None:
            w.stop()  # type: ignore[no-untyped-call]
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        threads = [threading.Thread(target=w.stop, daemon=True) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._thread.join(timeout=10)
        if self._logs is not None:
            self._logs.stop()
        if self.node is not None:
            # Pods still bound here are orphaned; the pod garbage collector removes them.
            self.api.delete_node(self.node)

    # -- the watch ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._sync_and_watch()
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("pod watch failed; re-listing")
                self._stopping.wait(1.0)

    def _sync_and_watch(self) -> None:
        pods, version = self.api.list_pods(self.namespace)
        present = {_key(p) for p in pods}
        for pod in pods:
            self._observe("ADDED", pod)
        with self._lock:
            gone = [k for k in self._workers if k not in present]
        for key in gone:
            self._forget(key)
        if self._stopping.is_set():  # stop() came during the list: start no new watch
            return
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        kwargs: dict[str, Any] = {"timeout_seconds": 60}
        if version:
            kwargs["resource_version"] = version
        core = self.api.core
        lister, args = (
            (core.list_pod_for_all_namespaces, ())
            if self.namespace is None
            else (core.list_namespaced_pod, (self.namespace,))
        )
        stream = self._watch.stream(lister, *args, **kwargs)  # type: ignore[no-untyped-call]
        for event in stream:
            if self._stopping.is_set():
                return
            raw = event.get("raw_object")
            if isinstance(raw, dict) and event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                self._observe(str(event["type"]), raw)

    def _observe(self, kind: str, pod: Mapping[str, Any]) -> None:
        key = _key(pod)
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        mine = self.node is None or spec.get("nodeName") == self.node
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            if kind != "DELETED" and mine and self.node is not None:
                self._forget(key, confirm=(str(meta.get("namespace")), str(meta.get("name"))))
            else:
                self._forget(key)
            return
        phase = (pod.get("status") or {}).get("phase")
        if self.node is not None and not spec.get("nodeName"):
            if not spec.get("schedulingGates") and phase not in FINISHED:
                ns, name = str(meta.get("namespace")), str(meta.get("name"))
                try:
                    self.api.bind(ns, name, str(meta.get("uid")), self.node)
                except Exception:  # the next event or re-list tries again
                    log.exception("binding pod %s/%s", ns, name)
            return  # the watch brings it back bound
        if not mine:
            return
        with self._lock:
            if key in self._workers or self._stopping.is_set() or phase in FINISHED:
                return
            worker = _PodWorker(self, pod)
            self._workers[key] = worker
        log.info("starting pod %s/%s", worker.namespace, worker.name)
        worker.start()

    def _forget(self, key: str, confirm: tuple[str, str] | None = None) -> None:
        """Stop the pod's processes; with ``confirm``, then remove the terminating pod."""
        with self._lock:
            worker = self._workers.pop(key, None)

        def finish() -> None:
            if worker is not None:
                log.info("stopping pod %s/%s", worker.namespace, worker.name)
                worker.stop()
            if confirm is not None:
                try:
                    self.api.finish_deletion(*confirm, uid=key)
                except Exception:
                    log.exception("confirming the deletion of pod %s/%s", *confirm)

        if worker is not None or confirm is not None:
            threading.Thread(target=finish, daemon=True).start()
