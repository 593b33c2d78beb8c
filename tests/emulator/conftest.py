"""Fixtures for the emulator's own tests: the Widget CRD installed and its API client.

These tests are the emulator's own, so their `cluster` is always the emulator (marked
`emulator`), whatever the session's API server is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import pytest
from emulator_crd import GROUP, PLURAL, WIDGET_CRD

from devcluster.testing import Cluster, wait_for

HERE = Path(__file__).parent


@pytest.fixture
def cluster(emulator_cluster: Cluster) -> Cluster:
    return emulator_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.emulator)


@pytest.fixture
def widgets(cluster: Cluster) -> Any:
    """Install the Widget CRD (once per cluster) and return a CustomObjectsApi."""
    ext = kubernetes.client.ApiextensionsV1Api()
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, message="the Widget CRD to be established")
    return kubernetes.client.CustomObjectsApi()
