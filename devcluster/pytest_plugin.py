"""pytest fixtures: `cluster` (emulator or real cluster) with KUBECONFIG and the client set up.

Enable with `pytest_plugins = ["devcluster.pytest_plugin"]` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.testing import Cluster
from devcluster.testing import cluster as open_cluster


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A Kubernetes API for one test: a fresh emulator, or INCLUSTER_TEST_KUBECONFIG's cluster.

    Sets KUBECONFIG, the `kubernetes` client's default kubeconfig location (read once at its
    import) and its default Configuration, all restored after the test.
    """
    import kubernetes

    with open_cluster(tmp_path) as handle:
        monkeypatch.setenv("KUBECONFIG", str(handle.kubeconfig))
        monkeypatch.setattr(
            kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(handle.kubeconfig)
        )
        previous = kubernetes.client.Configuration.get_default_copy()
        kubernetes.config.load_kube_config(config_file=str(handle.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            yield handle
        finally:
            kubernetes.client.Configuration.set_default(previous)
