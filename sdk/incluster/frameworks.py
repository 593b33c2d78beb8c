"""Joining a framework's distributed world from the env the operator sets.

JAX is the one framework that needs a call: ``jax.distributed.initialize()`` reads only
``JAX_COORDINATOR_ADDRESS`` from env (jax 0.4 to 0.10), not the process count or id,
so with no arguments two processes of a ``framework: jax`` Experiment fail with
"Number of processes must be defined". ``jax_initialize()`` passes all three.
(PyTorch needs nothing: ``init_process_group("gloo")`` reads ``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE`` and ``RANK``, which the operator sets.)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from incluster import contract
from incluster.errors import ContextError


def jax_world(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``jax.distributed.initialize``'s keyword arguments from the env; {} outside a world.

    Raises ContextError when the env is partial or malformed (a broken context must not
    train as a single process unnoticed).
    """
    env = os.environ if environ is None else environ
    address, count, process = (env.get(name) for name in contract.ENV_JAX)
    if address is None and count is None and process is None:
        return {}
    if not (address and count and process):
        missing = [n for n in contract.ENV_JAX if not env.get(n)]
        raise ContextError(f"{', '.join(missing)} missing while other JAX_* variables are set")
    try:
        num_processes, process_id = int(count), int(process)
    except ValueError:
        raise ContextError(
            f"JAX_NUM_PROCESSES={count!r} and JAX_PROCESS_ID={process!r} must be integers"
        ) from None
    if not 0 <= process_id < num_processes:
        raise ContextError(f"JAX_PROCESS_ID={process_id} is outside 0..{num_processes - 1}")
    return {
        "coordinator_address": address,
        "num_processes": num_processes,
        "process_id": process_id,
    }


def jax_initialize(**kwargs: Any) -> bool:
    """Join the experiment's JAX world: ``jax.distributed.initialize`` with its coordinator,
    process count and this process's id; ``kwargs`` are JAX's own and win.

    Returns True when it joined a world, False when there is none (no ``JAX_*`` env: a
    single process, e.g. the script run locally without ``incluster run``), so the same
    script runs both ways. Needs an Experiment with ``framework: jax``.
    """
    world = jax_world()
    if not world and not kwargs:
        return False
    # The caller's dependency, imported only here (never by ``import incluster``).
    jax = importlib.import_module("jax")
    jax.distributed.initialize(**{**world, **kwargs})
    return True


__all__ = ["jax_initialize", "jax_world"]
