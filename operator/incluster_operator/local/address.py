"""Which loopback address a planned pod's replica owns. Pure.

With the operator's ``loopback`` addressing, each replica's address in the cluster
definition is a distinct ``127.x.y.z``; the process must find that address as its pod IP
(``status.podIP``, a ``fieldRef`` to it) and be able to listen on it. The runner reads
the address from the pod's own context, the same way the SDK will: ``INCLUSTER_TASK_INFO``
from env, the cluster definition from ``INCLUSTER_CLUSTER`` or from ``cluster.json`` in
the context directory. So nothing here depends on how the operator computes addresses.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from incluster import contract, topology

from incluster_operator.local.plan import PodPlan


def _cluster(plan: PodPlan, env: dict[str, str] | Any) -> Any:
    inline = env.get(contract.ENV_CLUSTER)
    if inline:
        return json.loads(inline)
    context_dir = env.get(contract.ENV_CONTEXT_DIR)
    if not context_dir:
        return None
    wanted = Path(context_dir) / contract.FILE_CLUSTER
    for f in plan.files:
        if f.path == wanted:
            return json.loads(f.content)
    return None


def replica_address(plan: PodPlan) -> str | None:
    """The replica's own loopback host from its context, or None (not a loopback replica)."""
    for container in plan.containers:
        env = container.env
        try:
            task = json.loads(env.get(contract.ENV_TASK_INFO) or "null")
            cluster = _cluster(plan, env)
        except ValueError:
            return None
        if not isinstance(task, dict) or not isinstance(cluster, dict):
            continue
        addresses = cluster.get(task.get("type"))
        index = task.get("index")
        if not isinstance(addresses, list) or not isinstance(index, int):
            continue
        if not 0 <= index < len(addresses):
            continue
        try:
            host, _ = topology.split_address(str(addresses[index]))
            if ipaddress.ip_address(host).is_loopback:
                return host
        except ValueError:
            return None
        return None
    return None
