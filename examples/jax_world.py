"""A JAX multi-process job: ``incluster.jax_initialize()`` joins the world, no arguments.

``jax.distributed.initialize()`` alone reads only JAX_COORDINATOR_ADDRESS from the
environment, not the process count or id; ``incluster.jax_initialize()`` passes all
three from the env the operator sets (framework: jax), and any of JAX's own keyword
arguments through. Each process contributes its id; all-gathering them proves that the
processes form one world.
"""

from __future__ import annotations

import incluster
import jax
import jax.numpy as jnp
from incluster import tracking
from jax.experimental import multihost_utils


def main() -> None:
    incluster.jax_initialize()
    me, count = jax.process_index(), jax.process_count()
    gathered = multihost_utils.process_allgather(jnp.array([me + 1.0]))
    total = float(gathered.sum())
    assert total == count * (count + 1) / 2, gathered
    tracking.log_metrics(step=0, processes=count, global_devices=jax.device_count(), total=total)
    print(f"process {me}/{count}: {jax.device_count()} devices, all-gather sum {total:g}")


if __name__ == "__main__":
    main()
