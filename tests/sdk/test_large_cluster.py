"""A 5,000-replica cluster is served from cluster.json with env left out (O(1) pod size)."""

from __future__ import annotations

import json
import os

import pytest
from incluster import context, contract

from tests.sdk.mounts import Mount

REPLICAS = 5_000
CLUSTER = {
    "chief": ["xp-chief-0.xp.ns.svc:2222"],
    "worker": [f"xp-worker-{i}.xp.ns.svc:2222" for i in range(REPLICAS - 2)],
    "ps": ["xp-ps-0.xp.ns.svc:2222"],
}


@pytest.fixture
def large(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> Mount:
    """The pod env the operator renders above the inline threshold: no cluster, no TF_CONFIG."""
    mount.write({contract.KEY_OUTPUTS_PATH: "/outputs/ns/p/xp"}, cluster=CLUSTER)
    monkeypatch.setenv(contract.ENV_CLUSTER_IN_FILE, "1")
    monkeypatch.setenv(contract.ENV_TASK_INFO, json.dumps({"type": "worker", "index": 4321}))
    return mount


def test_cluster_def_comes_from_the_file(large: Mount) -> None:
    assert contract.ENV_CLUSTER not in os.environ
    cluster = context.get_cluster_def()
    assert cluster == CLUSTER
    assert sum(map(len, cluster.values())) == REPLICAS
    assert context.is_distributed()


def test_tf_config_is_built_and_exported(large: Mount) -> None:
    assert contract.ENV_TF_CONFIG not in os.environ
    config = context.get_tf_config(envvar="TF_CONFIG")
    assert config["cluster"] == CLUSTER
    assert config["task"] == {"type": "worker", "index": 4321}
    assert config["environment"] == "cloud"
    exported = json.loads(os.environ["TF_CONFIG"])
    assert exported == config
    # The exported value is what a later call (and TensorFlow) reads: env wins now.
    assert context.get_tf_config() == config


def test_every_pod_env_stays_small(large: Mount) -> None:
    """What the pod carries does not grow with the replica count."""
    context_env = {k: v for k, v in os.environ.items() if k.startswith(contract.ENV_PREFIX)}
    assert sum(len(k) + len(v) for k, v in context_env.items()) < 1024
    assert (large.path / contract.FILE_CLUSTER).stat().st_size > 100_000
