"""PyTorch DDP with nothing but the env the operator sets (framework: pytorch).

``init_process_group("gloo")`` reads MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK from
the environment: the operator sets them for the master (rank 0) and every worker. Each
rank trains a one-weight model on its own shard; DDP averages the gradients, so every
rank ends with the same weight, which the test checks.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from incluster import tracking
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    dist.init_process_group("gloo")  # env:// is the default init method
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == int(os.environ["WORLD_SIZE"])
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(1, 1, bias=False))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.full((8, 1), float(rank + 1))  # each rank's own shard
    for step in range(20):
        optimiser.zero_grad()
        loss = ((model(x) - 2 * x) ** 2).mean()
        loss.backward()  # DDP all-reduces the gradients here
        optimiser.step()
        tracking.log_metric("loss", loss.item(), step=step)
    weight = model.module.weight.item()
    tracking.log_outputs(weight=weight)
    print(f"rank {rank}/{world}: weight {weight:.4f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
