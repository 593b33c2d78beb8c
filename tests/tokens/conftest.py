"""Fixtures for the token, client and summary-sync tests, on the ``cluster`` fixture.

An ``experiment`` is an Experiment object plus its rendered access objects, created through
the real ``kubernetes`` client; ``pod_context`` is what a pod of it sees: a context
directory whose ``token/`` holds the token the operator minted (``tokens.mint``), and the
env the SDK reads. Everything lives in the test's own namespace, tmp_path and emulator.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from incluster import contract
from incluster_operator import tokens
from incluster_operator.api import crd
from incluster_operator.render import access

#: The real CRD, from its single source (the API models).
EXPERIMENT_CRD: dict[str, Any] = crd.definition()

TTL = 3600


def status_patches(name: str = "xp", count: int | None = None) -> Any:
    """A kmock criterion: PATCHes of ``name``'s status, only the next ``count`` if given.

    A counting criterion (rather than kmock's slices, which count every matching request
    since the emulator started) makes "fail the next N patches" exact.
    """
    left = [count]

    def matches(request: Any) -> bool:
        if request.method != "PATCH" or request.name != name or request.subresource != "status":
            return False
        if left[0] is None:
            return True
        if left[0] > 0:
            left[0] -= 1
            return True
        return False

    return matches


def fail(cluster: Any, status: int, *criteria: Any, payload: Any = None) -> None:
    """Answer the requests matching all ``criteria`` with ``status`` (state untouched)."""
    import kmock

    def install() -> None:
        view = cluster.emulator
        for criterion in criteria:
            view = view[criterion]
        view << (payload if payload is not None else kmock.KubernetesError(status=status))

    cluster.call(install)


@dataclass
class ExperimentHandle:
    name: str
    namespace: str
    api: Any  # kubernetes.client.ApiClient

    def get(self, name: str | None = None) -> dict[str, Any]:
        from kubernetes import client

        obj: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            contract.API_GROUP,
            contract.API_VERSION,
            self.namespace,
            contract.PLURAL,
            name or self.name,
        )
        return obj

    def tracking(self) -> dict[str, Any]:
        return dict((self.get().get("status") or {}).get(contract.STATUS_TRACKING) or {})

    def secret_token(self) -> str:
        from kubernetes import client

        secret = client.CoreV1Api(self.api).read_namespaced_secret(
            access.access_names(self.name).secret, self.namespace
        )
        return base64.b64decode(secret.data[access.SECRET_KEY_TOKEN]).decode()


def create_experiment(api: Any, namespace: str, name: str, refs: list[str]) -> None:
    """Store an Experiment and its access objects the way the handlers would."""
    from kubernetes import client, utils

    client.CustomObjectsApi(api).create_namespaced_custom_object(
        contract.API_GROUP,
        contract.API_VERSION,
        namespace,
        contract.PLURAL,
        {
            "apiVersion": f"{contract.API_GROUP}/{contract.API_VERSION}",
            "kind": "Experiment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"outputsRefs": {"experiments": refs}},
        },
    )
    for obj in (
        access.service_account(name, namespace),
        access.role(name, namespace, refs),
        access.role_binding(name, namespace),
        access.token_secret(name, namespace),
    ):
        utils.create_from_dict(api, obj, namespace=namespace)


HERE = Path(__file__).parent


@pytest.fixture
def cluster(emulator_cluster: Any) -> Any:
    """The emulator: these tests drive the per-experiment token design (Secret, Role,
    TokenRequest) through fault injection; the design is being replaced (DESIGN.md s.3)."""
    return emulator_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.emulator)


@pytest.fixture
def api(cluster: Any) -> Iterator[Any]:
    client = cluster.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def experiment(cluster: Any, api: Any) -> ExperimentHandle:
    """Experiment ``xp`` (referencing ``prev``, which has an outputs path) with its access."""
    from kubernetes import client, utils

    utils.create_from_dict(api, EXPERIMENT_CRD)
    create_experiment(api, cluster.namespace, "prev", [])
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        contract.API_GROUP,
        contract.API_VERSION,
        cluster.namespace,
        contract.PLURAL,
        "prev",
        {"status": {contract.STATUS_OUTPUTS_PATH: "/outputs/ns/prev", "phase": "Succeeded"}},
    )
    create_experiment(api, cluster.namespace, "xp", ["prev"])
    tokens.mint(api, cluster.namespace, "xp", TTL)
    return ExperimentHandle("xp", cluster.namespace, api)


def write_token(context_dir: Path, token: str) -> Path:
    """Replace the token file the way the kubelet does: a new file renamed over the old one."""
    token_dir = context_dir / contract.DIR_TOKEN
    token_dir.mkdir(parents=True, exist_ok=True)
    fresh = token_dir / ".token.new"
    fresh.write_text(token)
    os.replace(fresh, token_dir / contract.FILE_TOKEN)
    return token_dir / contract.FILE_TOKEN


@pytest.fixture
def pod_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: Any, experiment: ExperimentHandle
) -> Path:
    """The context a pod of ``xp`` sees (master 0 of a master+worker cluster)."""
    for name in list(os.environ):
        if name.startswith(contract.ENV_PREFIX) or name == contract.ENV_TF_CONFIG:
            monkeypatch.delenv(name)
    context_dir = tmp_path / "context"
    write_token(context_dir, experiment.secret_token())
    (context_dir / contract.DIR_TOKEN / contract.FILE_CA).write_text(
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"
    )
    info = {contract.INFO_EXPERIMENT_NAME: "xp", contract.INFO_NAMESPACE: cluster.namespace}
    document = {
        contract.KEY_VERSION: contract.CONTEXT_VERSION,
        contract.KEY_EXPERIMENT_INFO: info,
        contract.KEY_OUTPUTS_PATH: str(tmp_path / "outputs"),
        contract.KEY_PRIMARY_METRIC: "loss",
    }
    (context_dir / contract.FILE_CONTEXT).write_text(json.dumps(document))
    monkeypatch.setenv(contract.ENV_CONTEXT_DIR, str(context_dir))
    monkeypatch.setenv(contract.ENV_API_URL, cluster.url)
    monkeypatch.setenv(contract.ENV_EXPERIMENT_INFO, json.dumps(info))
    monkeypatch.setenv(contract.ENV_TASK_INFO, json.dumps({"type": "master", "index": 0}))
    monkeypatch.setenv(
        contract.ENV_CLUSTER, json.dumps({"master": ["m:2222"], "worker": ["w:2222"]})
    )
    monkeypatch.setenv(contract.ENV_OUTPUTS_PATH, str(tmp_path / "outputs"))
    return context_dir
