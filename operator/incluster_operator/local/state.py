"""A pod's state while it runs locally, and its Kubernetes ``status`` rendering. Pure.

The runners keep a ``PodState`` (immutable snapshots) and the pod runner patches
``pod_status(state)`` into the API, so the operator reads exactly what a kubelet would
report: phase, pod IP, conditions and per-container states with exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from incluster_operator.api.times import format_time

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class ContainerState:
    """One container: ``waiting``, ``running`` or ``terminated`` (with its exit)."""

    name: str
    state: Literal["waiting", "running", "terminated"] = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0

    def running(self, at: float) -> ContainerState:
        return replace(self, state="running", reason="", message="", exit_code=None, started_at=at)

    def terminated(
        self, code: int, signal: int | None, started: float, finished: float, message: str = ""
    ) -> ContainerState:
        reason = "Completed" if code == 0 else "Error"
        return replace(
            self,
            state="terminated",
            reason=reason,
            message=message,
            exit_code=code,
            signal=signal,
            started_at=started,
            finished_at=finished,
        )


@dataclass(frozen=True)
class PodState:
    phase: Phase
    pod_ip: str
    init_containers: tuple[ContainerState, ...]
    containers: tuple[ContainerState, ...]
    start_time: float
    reason: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def with_container(self, new: ContainerState, init: bool = False) -> PodState:
        if init:
            inits = tuple(new if c.name == new.name else c for c in self.init_containers)
            return replace(self, init_containers=inits)
        mains = tuple(new if c.name == new.name else c for c in self.containers)
        return replace(self, containers=mains)


def _time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return format_time(datetime.fromtimestamp(ts, UTC))


def container_status(c: ContainerState, image: str = "") -> dict[str, Any]:
    if c.state == "running":
        state: dict[str, Any] = {"running": {"startedAt": _time(c.started_at)}}
    elif c.state == "terminated":
        terminated: dict[str, Any] = {
            "exitCode": c.exit_code,
            "reason": c.reason,
            "startedAt": _time(c.started_at),
            "finishedAt": _time(c.finished_at),
        }
        if c.signal is not None:
            terminated["signal"] = c.signal
        if c.message:
            terminated["message"] = c.message
        state = {"terminated": terminated}
    else:
        waiting = {"reason": c.reason}
        if c.message:
            waiting["message"] = c.message
        state = {"waiting": waiting}
    return {
        "name": c.name,
        "state": state,
        "ready": c.state == "running",
        "started": c.state == "running",
        "restartCount": c.restart_count,
        "image": image,
        "imageID": "",
    }


def pod_status(state: PodState, host_ip: str = "127.0.0.1") -> dict[str, Any]:
    """The pod's ``status`` as a kubelet reports it."""
    now = _time(state.start_time)
    initialized = all(c.state == "terminated" and c.exit_code == 0 for c in state.init_containers)
    ready = state.phase == "Running" and all(c.state == "running" for c in state.containers)

    def condition(kind: str, ok: bool) -> dict[str, Any]:
        return {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now}

    status: dict[str, Any] = {
        "phase": state.phase,
        "podIP": state.pod_ip,
        "podIPs": [{"ip": state.pod_ip}],
        "hostIP": host_ip,
        "startTime": now,
        "conditions": [
            condition("PodScheduled", True),
            condition("Initialized", initialized),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "initContainerStatuses": [container_status(c) for c in state.init_containers],
        "containerStatuses": [container_status(c) for c in state.containers],
    }
    if state.reason:
        status["reason"] = state.reason
    if state.message:
        status["message"] = state.message
    return status
