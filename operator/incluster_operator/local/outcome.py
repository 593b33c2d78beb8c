"""When a local run is over, and whether it succeeded. Pure.

The rules are the Experiment's (see ``RunPolicy`` in the API models): with the
``default`` success policy the master/chief decides when present, else worker 0; with
``allWorkers`` every worker (and the master/chief, if any) must succeed. Any replica
failing for good fails the run, as does exceeding ``backoffLimit`` restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from incluster import contract

from incluster_operator.local.state import PodState

Replica = tuple[str, int]


@dataclass(frozen=True)
class Outcome:
    phase: Literal["Succeeded", "Failed"]
    reason: str
    message: str

    @property
    def exit_code(self) -> int:
        return 0 if self.phase == "Succeeded" else 1


def _label(replica: Replica) -> str:
    return f"{replica[0]}-{replica[1]}"


def decide(
    states: Mapping[Replica, PodState],
    policy: str,
    backoff_limit: int,
) -> Outcome | None:
    """The run's outcome from its replicas' latest states, or None while undecided."""
    for replica, state in sorted(states.items()):
        if state.phase == "Failed":
            codes = [
                f"{c.name} exited {c.exit_code}"
                for c in (*state.init_containers, *state.containers)
                if c.exit_code not in (None, 0)
            ]
            detail = ", ".join(codes) or state.message or state.reason
            return Outcome("Failed", "ReplicaFailed", f"replica {_label(replica)} failed: {detail}")
    restarts = sum(c.restart_count for s in states.values() for c in s.containers)
    if restarts > backoff_limit:
        return Outcome(
            "Failed",
            "BackoffLimitExceeded",
            f"{restarts} restarts exceed runPolicy.backoffLimit={backoff_limit}",
        )
    leaders = [r for r in states if r[0] in (contract.MASTER, contract.CHIEF)]
    workers = sorted(r for r in states if r[0] == contract.WORKER)
    deciders = leaders + workers if policy == "allWorkers" else leaders or workers[:1]
    if deciders and all(states[r].phase == "Succeeded" for r in deciders):
        names = ", ".join(_label(r) for r in deciders)
        return Outcome("Succeeded", "Succeeded", f"{names} succeeded ({policy} success policy)")
    return None
