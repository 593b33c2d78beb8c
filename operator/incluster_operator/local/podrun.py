"""Run one planned pod like a kubelet: init containers in order, then the containers.

``restartPolicy`` is honoured (``Never``; ``OnFailure`` and ``Always`` restart with a
capped exponential back-off), every transition is reported to ``on_change`` as an
immutable ``PodState``, and ``stop()`` ends every process within the pod's grace period.
Both runners use it: the pod runner patches the states into the API, the local runner
draws them as a status line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from incluster_operator.local import supervisor
from incluster_operator.local.plan import ContainerPlan, PodPlan, materialise
from incluster_operator.local.state import ContainerState, PodState

OnChange = Callable[[PodState], None]
#: (container name, one line of its output)
OnLine = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Backoff:
    """Delay before restart number n: ``first * 2**n``, capped (a kubelet caps at 5 min)."""

    first: float = 0.5
    cap: float = 10.0

    def delay(self, restarts: int) -> float:
        return float(min(self.cap, self.first * 2 ** min(restarts, 30)))


class PodRun:
    """One pod's processes; thread-safe ``state``, ``wait`` and ``stop``."""

    def __init__(
        self,
        plan: PodPlan,
        pod_ip: str,
        on_change: OnChange | None = None,
        on_line: OnLine | None = None,
        backoff: Backoff = Backoff(),
        max_grace: float = 30.0,
    ) -> None:
        self.plan = plan
        self._on_change = on_change
        self._on_line = on_line
        self._backoff = backoff
        self._grace = min(plan.grace_seconds, max_grace)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._running: dict[str, supervisor.Process] = {}
        self._state = PodState(
            phase="Pending",
            pod_ip=pod_ip,
            init_containers=tuple(
                ContainerState(c.name, reason="PodInitializing") for c in plan.init_containers
            ),
            containers=tuple(
                ContainerState(
                    c.name,
                    reason="PodInitializing" if plan.init_containers else "ContainerCreating",
                )
                for c in plan.containers
            ),
            start_time=time.time(),
        )
        self._thread = threading.Thread(target=self._run, name=f"pod:{plan.name}", daemon=True)

    @property
    def state(self) -> PodState:
        with self._lock:
            return self._state

    def start(self) -> PodRun:
        self._publish(self.state)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> PodState | None:
        """The final state once every container has finished, or None on timeout."""
        return self.state if self._done.wait(timeout) else None

    def stop(self) -> PodState:
        """Stop every process (SIGTERM, then SIGKILL after the grace period) and wait."""
        with self._lock:
            self._stopping.set()
            running = list(self._running.values())
        threads = [
            threading.Thread(target=p.stop, args=(self._grace,), daemon=True) for p in running
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._thread.is_alive():
            self._thread.join()
        return self.state

    # -- internals ------------------------------------------------------------------------

    def _update(self, change: Callable[[PodState], PodState]) -> None:
        with self._lock:
            self._state = change(self._state)
            snapshot = self._state
            self._publish(snapshot)

    def _publish(self, snapshot: PodState) -> None:
        if self._on_change is not None:
            self._on_change(snapshot)

    def _run(self) -> None:
        try:
            materialise(self.plan)
        except OSError as exc:
            failed = replace(self.state, phase="Failed", reason="VolumeError", message=str(exc))
            self._update(lambda _: failed)
            self._done.set()
            return
        for container in self.plan.init_containers:
            if not self._run_container(container, init=True):
                stopped = self._stopping.is_set()
                self._update(self._final if stopped else partial(_init_failed, name=container.name))
                self._done.set()
                return
        self._update(lambda s: replace(s, phase="Running"))
        threads = [
            threading.Thread(target=self._run_container, args=(c, False), daemon=True)
            for c in self.plan.containers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._update(self._final)
        self._done.set()

    def _final(self, pod: PodState) -> PodState:
        ok = all(c.exit_code == 0 for c in pod.containers)
        if ok:
            # Exit 0 is success even if the runner was stopping it (a replica that
            # finished as the master decided): a kubelet reports Completed too.
            return replace(pod, phase="Succeeded")
        if self._stopping.is_set():
            return replace(pod, phase="Failed", reason="Stopped", message="stopped by the runner")
        return replace(pod, phase="Failed")

    def _set(
        self, name: str, init: bool, change: Callable[[ContainerState], ContainerState]
    ) -> None:
        """Replace one container's state with ``change(old)`` and publish the pod."""

        def apply(pod: PodState) -> PodState:
            pool = pod.init_containers if init else pod.containers
            old = next(c for c in pool if c.name == name)
            return pod.with_container(change(old), init)

        self._update(apply)

    def _run_container(self, container: ContainerPlan, init: bool) -> bool:
        """Run (and restart per policy) one container; True once it exited 0."""
        name = container.name
        restarts = 0
        while True:
            error = ""
            process: supervisor.Process | None = None
            with self._lock:
                if self._stopping.is_set():
                    return False
                try:
                    process = supervisor.start(
                        container.argv,
                        container.env,
                        container.cwd,
                        container.log_path,
                        self._line_callback(name),
                    )
                except supervisor.StartError as exc:
                    error = str(exc)
                else:
                    self._running[name] = process
            if process is None:
                now = time.time()
                code = supervisor.START_ERROR_CODE
                self._set(name, init, partial(_start_error, message=error, at=now))
            else:
                self._set(name, init, partial(ContainerState.running, at=process.started_at))
                result = process.wait()
                assert result is not None
                with self._lock:
                    self._running.pop(name, None)
                code = result.code
                self._set(
                    name,
                    init,
                    partial(
                        ContainerState.terminated,
                        code=result.code,
                        signal=result.signal,
                        started=result.started_at,
                        finished=result.finished_at,
                    ),
                )
            if not self._should_restart(code, init):
                return code == 0
            if self._stopping.wait(self._backoff.delay(restarts)):
                return False
            restarts += 1
            count = restarts
            self._set(name, init, partial(replace, restart_count=count))

    def _should_restart(self, code: int, init: bool) -> bool:
        if self._stopping.is_set():
            return False
        policy = self.plan.restart_policy
        return (policy == "Always" and not init) or (policy != "Never" and code != 0)

    def _line_callback(self, name: str) -> Callable[[bytes], None] | None:
        on_line = self._on_line
        if on_line is None:
            return None
        return lambda line: on_line(name, line)


def _start_error(c: ContainerState, message: str, at: float) -> ContainerState:
    code = supervisor.START_ERROR_CODE
    return replace(c.terminated(code, None, at, at, message), reason="StartError")


def _init_failed(pod: PodState, name: str) -> PodState:
    return replace(
        pod, phase="Failed", reason="InitFailed", message=f"init container {name} failed"
    )
