"""Cluster definition + task -> the env each framework expects. Pure functions.

The operator calls these to render pods and the SDK calls them to rebuild TF_CONFIG
from the mounted cluster file, so both sides agree by construction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from incluster import contract
from incluster.errors import ContextError

ClusterDef = Mapping[str, Sequence[str]]

#: Task types that are processes of the training "world" (PyTorch ranks, JAX processes),
#: in rank order. ps and evaluator are not.
WORLD_TYPES = (contract.MASTER, contract.CHIEF, contract.WORKER)


def check_task(cluster: ClusterDef, task_type: str, index: int) -> None:
    """Raise ContextError when the task has no place in the cluster definition.

    An evaluator may be absent from the cluster (TensorFlow runs it outside the
    training cluster); every other type must be there, at that index.
    """
    if task_type not in contract.TASK_TYPES:
        raise ContextError(
            f"task type {task_type!r} is unknown; expected one of {list(contract.TASK_TYPES)}"
        )
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ContextError(f"task index {index!r} must be an integer >= 0")
    if task_type == contract.EVALUATOR and task_type not in cluster:
        return
    addresses = cluster.get(task_type)
    if addresses is None:
        raise ContextError(
            f"task type {task_type!r} is not in the cluster definition (it has {sorted(cluster)})"
        )
    if index >= len(addresses):
        raise ContextError(
            f"task {task_type}:{index} is out of range: the cluster definition has "
            f"{len(addresses)} {task_type} replica(s)"
        )


def tf_config(cluster: ClusterDef, task_type: str, index: int) -> dict[str, Any]:
    """TensorFlow's TF_CONFIG for one task."""
    check_task(cluster, task_type, index)
    return {
        "cluster": {k: list(v) for k, v in cluster.items()},
        "task": {"type": task_type, "index": index},
        "environment": "cloud",
    }


def world(cluster: ClusterDef) -> list[tuple[str, int, str]]:
    """The processes of the training world, in rank order: (type, index, address)."""
    return [(t, i, address) for t in WORLD_TYPES for i, address in enumerate(cluster.get(t, ()))]


def rank(cluster: ClusterDef, task_type: str, index: int) -> int:
    """Global rank: master/chief first (rank 0), then workers 1..N."""
    check_task(cluster, task_type, index)
    for r, (t, i, _) in enumerate(world(cluster)):
        if (t, i) == (task_type, index):
            return r
    raise ContextError(
        f"task {task_type}:{index} has no rank: only {list(WORLD_TYPES)} replicas are "
        "processes of a PyTorch/JAX world"
    )


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` -> (host, port), with a ContextError naming a malformed address."""
    host, sep, port = address.rpartition(":")
    if not sep or not host.strip("[]") or not (port.isascii() and port.isdigit()):
        raise ContextError(f"address {address!r} is not of the form host:port")
    if not 0 < int(port) < 65536:
        raise ContextError(f"address {address!r} has port {int(port)}, outside 1-65535")
    return host.strip("[]"), int(port)


def pytorch_env(cluster: ClusterDef, task_type: str, index: int) -> dict[str, str]:
    """torch.distributed's env:// variables and torchrun's PET_* ones."""
    r = rank(cluster, task_type, index)
    members = world(cluster)
    host, port = split_address(members[0][2])
    size = str(len(members))
    return {
        "MASTER_ADDR": host,
        "MASTER_PORT": str(port),
        "WORLD_SIZE": size,
        "RANK": str(r),
        "PET_NNODES": size,
        "PET_NODE_RANK": str(r),
        "PET_MASTER_ADDR": host,
        "PET_MASTER_PORT": str(port),
    }


def jax_env(cluster: ClusterDef, task_type: str, index: int) -> dict[str, str]:
    """``jax.distributed.initialize()``'s variables; process 0 is the coordinator."""
    r = rank(cluster, task_type, index)
    members = world(cluster)
    return {
        "JAX_COORDINATOR_ADDRESS": members[0][2],
        "JAX_NUM_PROCESSES": str(len(members)),
        "JAX_PROCESS_ID": str(r),
    }


def framework_env(
    framework: str, cluster: ClusterDef, task_type: str, index: int
) -> dict[str, str]:
    """The framework-specific env for one task (TF_CONFIG is handled separately).

    ps and evaluator replicas get no PyTorch/JAX variables: they are not ranks.
    """
    if framework not in contract.FRAMEWORKS:
        raise ContextError(
            f"framework {framework!r} is unknown; expected one of {list(contract.FRAMEWORKS)}"
        )
    if task_type not in WORLD_TYPES:
        return {}
    if framework == "pytorch":
        return pytorch_env(cluster, task_type, index)
    if framework == "jax":
        return jax_env(cluster, task_type, index)
    return {}


def tf_config_json(cluster: ClusterDef, task_type: str, index: int) -> str:
    """TF_CONFIG as the compact JSON string that goes into env."""
    return json.dumps(tf_config(cluster, task_type, index), separators=(",", ":"))


def loopback_host(experiment_key: str, task_type: str, index: int) -> str:
    """A distinct 127.x.y.z address per replica, for one machine (dev cluster, local runner).

    Linux routes all of 127.0.0.0/8 to ``lo``, so every replica can listen on its
    declared port without port allocation. The second octet comes from a hash of the
    experiment key so that concurrent experiments rarely share addresses; the last two
    encode (type, index) and never collide within an experiment (index < 8192).
    """
    if task_type not in contract.TASK_TYPES:
        raise ContextError(
            f"task type {task_type!r} is unknown; expected one of {list(contract.TASK_TYPES)}"
        )
    if isinstance(index, bool) or not 0 <= index < 8192:
        raise ContextError(f"task index {index} is too large for loopback addressing (< 8192)")
    import hashlib  # here, not at the top: loading OpenSSL costs ~4 ms of SDK import time

    digest = hashlib.sha256(experiment_key.encode()).digest()
    a = 1 + digest[0] % 254
    n = contract.TASK_TYPES.index(task_type) * 8192 + index
    return f"127.{a}.{n // 254}.{1 + n % 254}"
