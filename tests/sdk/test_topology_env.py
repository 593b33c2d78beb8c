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


# --- more cluster shapes ----------------------------------------------------------------

SHAPES = {
    "master-only": {"master": ["m:1"]},
    "chief-workers": {"chief": ["c:1"], "worker": ["w0:1", "w1:1"]},
    "chief-workers-ps-evaluator": {
        "chief": ["c:1"],
        "worker": ["w0:1"],
        "ps": ["p0:1", "p1:1"],
        "evaluator": ["e:1"],
    },
    "workers-only": {"worker": [f"w{i}:1" for i in range(5)]},
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_tf_config_for_every_task_of_every_shape(shape):
    cluster = SHAPES[shape]
    for task_type, addresses in cluster.items():
        for index in range(len(addresses)):
            cfg = json.loads(topology.tf_config_json(cluster, task_type, index))
            assert set(cfg) == {"cluster", "task", "environment"}
            assert cfg["cluster"] == cluster
            assert cfg["task"] == {"type": task_type, "index": index}
            assert cfg["environment"] == "cloud"


def test_tf_config_copies_the_cluster():
    cluster = {"worker": ["w0:1"]}
    cfg = topology.tf_config(cluster, "worker", 0)
    cfg["cluster"]["worker"].append("w1:1")
    assert cluster == {"worker": ["w0:1"]}


@pytest.mark.parametrize("workers", [0, 1, 7])
def test_pytorch_world_size_is_the_replica_count(workers):
    cluster = {"master": ["m:29500"], "worker": [f"w{i}:29500" for i in range(workers)]}
    ranks = [topology.pytorch_env(cluster, "master", 0)["RANK"]] + [
        topology.pytorch_env(cluster, "worker", i)["RANK"] for i in range(workers)
    ]
    assert ranks == [str(r) for r in range(workers + 1)]
    sizes = {topology.pytorch_env(cluster, "worker", i)["WORLD_SIZE"] for i in range(workers)}
    assert sizes <= {str(workers + 1)}
    assert topology.pytorch_env(cluster, "master", 0)["MASTER_PORT"] == "29500"


def test_pytorch_chief_is_rank_zero_without_a_master():
    cluster = SHAPES["chief-workers"]
    assert topology.pytorch_env(cluster, "chief", 0)["RANK"] == "0"
    assert topology.pytorch_env(cluster, "worker", 1)["RANK"] == "2"
    assert topology.pytorch_env(cluster, "worker", 1)["MASTER_ADDR"] == "c"


def test_pytorch_ipv6_master_address_loses_its_brackets():
    env = topology.pytorch_env({"master": ["[fd00::1]:29500"]}, "master", 0)
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("fd00::1", "29500")


def test_framework_env_table():
    assert topology.framework_env("jax", CLUSTER, "master", 0)["JAX_PROCESS_ID"] == "0"
    assert topology.framework_env("tensorflow", CLUSTER, "worker", 0) == {}
    assert topology.framework_env("none", CLUSTER, "worker", 0) == {}
    assert topology.framework_env("jax", CLUSTER, "ps", 0) == {}
    with pytest.raises(ContextError, match="framework 'mxnet' is unknown"):
        topology.framework_env("mxnet", CLUSTER, "worker", 0)


def test_rank_of_a_non_world_task_is_an_error():
    with pytest.raises(ContextError, match="ps:0 has no rank"):
        topology.rank(CLUSTER, "ps", 0)


@pytest.mark.parametrize("address", ["host", ":80", "host:", "host:8x", "host:²", "h:0", "h:65536"])
def test_malformed_addresses(address):
    with pytest.raises(ContextError, match="address"):
        topology.split_address(address)


def test_loopback_rejects_unknown_types_and_large_indexes():
    with pytest.raises(ContextError, match="task type 'boss'"):
        topology.loopback_host("ns/xp", "boss", 0)
    with pytest.raises(ContextError, match="8192"):
        topology.loopback_host("ns/xp", "worker", 8192)
