"""TF_CONFIG, PyTorch and JAX env built from a cluster definition."""

import json

import pytest
from incluster import topology
from incluster.errors import ContextError

CLUSTER = {
    "master": ["m0:2222"],
    "worker": ["w0:2222", "w1:2222", "w2:2222"],
    "ps": ["p0:2222"],
}


@pytest.mark.parametrize(
    ("task_type", "index"), [("master", 0), ("worker", 0), ("worker", 2), ("ps", 0)]
)
def test_tf_config_fields(task_type, index):
    cfg = topology.tf_config(CLUSTER, task_type, index)
    assert cfg == {
        "cluster": CLUSTER,
        "task": {"type": task_type, "index": index},
        "environment": "cloud",
    }
    assert json.loads(topology.tf_config_json(CLUSTER, task_type, index)) == cfg


def test_evaluator_may_be_outside_the_cluster():
    assert topology.tf_config(CLUSTER, "evaluator", 0)["task"] == {"type": "evaluator", "index": 0}


@pytest.mark.parametrize(("task_type", "index"), [("worker", 3), ("chief", 0), ("boss", 0)])
def test_task_not_in_cluster_is_a_context_error(task_type, index):
    with pytest.raises(ContextError, match=task_type):
        topology.tf_config(CLUSTER, task_type, index)


def test_pytorch_ranks_master_first_then_workers():
    envs = [topology.pytorch_env(CLUSTER, "master", 0)] + [
        topology.pytorch_env(CLUSTER, "worker", i) for i in range(3)
    ]
    assert [e["RANK"] for e in envs] == ["0", "1", "2", "3"]
    assert {e["WORLD_SIZE"] for e in envs} == {"4"}
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs} == {("m0", "2222")}
    assert envs[2]["PET_NODE_RANK"] == "2"
    assert envs[2]["PET_NNODES"] == "4"


def test_ps_gets_no_rank_env():
    assert topology.framework_env("pytorch", CLUSTER, "ps", 0) == {}


def test_jax_coordinator_is_process_zero():
    env = topology.jax_env(CLUSTER, "worker", 1)
    assert env == {
        "JAX_COORDINATOR_ADDRESS": "m0:2222",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "2",
    }


def test_loopback_hosts_are_distinct_within_an_experiment():
    hosts = {
        topology.loopback_host("ns/xp", t, i)
        for t in ("master", "chief", "worker", "ps", "evaluator")
        for i in range(600)
    }
    assert len(hosts) == 5 * 600
    assert all(h.startswith("127.") for h in hosts)
