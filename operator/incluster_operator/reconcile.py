"""One Experiment's reconcile: a round (read, decide, act) and the loop of rounds. No kopf.

Why apart from the kopf handlers: the round is the operator's whole I/O path (every
call goes through ``k8s``; every rule comes from ``desired`` and
``status``), and the loop only needs to be woken and cancelled, which kopf does from
``handlers``. Rounds run in a worker thread: the ``kubernetes`` client blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from incluster_operator import k8s, status
from incluster_operator.desired import admit, ignored_change, meta_of, run_of
from incluster_operator.render.context import spec_document
from incluster_operator.settings import Settings

#: Look again at least this often even without events (a safety net for lost events).
RESYNC_SECONDS: Final = 60.0
#: After a pod event, wait this long for more before looking (bursts become one look).
DEBOUNCE_SECONDS: Final = 0.05
#: Backoff after a failed API call: doubles from the first value up to the second.
RETRY_SECONDS: Final = (0.2, 30.0)


@dataclass(frozen=True)
class Step:
    """The outcome of one reconcile: idle until the spec changes, or when to look again.

    ``done``: nothing to watch (finished, or failed before any pod); the loop sleeps
    until a new generation wakes it (``handlers.experiment_event``). ``gone``: the
    Experiment is deleted, the loop ends.
    """

    done: bool
    requeue_after: float | None = None
    gone: bool = False


#: ``Progress.run_spec`` before the loop has looked for the run's spec.
_UNKNOWN: Final[dict[str, Any]] = {}


@dataclass
class Progress:
    """What one experiment's loop has achieved; survives failed rounds, not restarts."""

    #: The Service and the context ConfigMap exist.
    children: bool = False
    #: The pods of the first round were created (see ``reconcile``).
    first_pods: bool = False
    #: The spec the run started with (the context ConfigMap's ``spec.json``); None while
    #: no run has started. Read once per loop, so an operator restart finds it again.
    run_spec: dict[str, Any] | None = field(default_factory=lambda: _UNKNOWN)
    #: (generation, what of it is ignored): an edit is judged once per generation, not
    #: on every pod event (validating the spec again costs more than the round).
    judged: tuple[int | None, str | None] | None = None


def _no_pod(task_type: str, index: int) -> dict[str, Any]:
    raise AssertionError(f"no pod may be created for {task_type}-{index} of a failed experiment")


def _generation(body: dict[str, Any]) -> int | None:
    generation = (body.get("metadata") or {}).get("generation")
    return generation if isinstance(generation, int) else None


def reconcile(
    api: k8s.Api, settings: Settings, namespace: str, name: str, progress: Progress
) -> Step:
    """Read the experiment and its pods, decide (``status``), act (``k8s``).

    Children other than pods are ensured once per loop (``progress``): after a restart
    the new loop adopts them; pods are compared with the desired set on every call.
    A started run is decided by the spec it started with; a later edit is reported
    (``SpecChangeIgnored``), and an experiment that failed before any pod is admitted
    again when its spec changes. Raises ``k8s.RETRYABLE`` errors for the caller to
    retry with a backoff.
    """
    body = k8s.read_experiment(api, namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return Step(done=True, gone=True)
    now = datetime.now(UTC)
    meta = meta_of(body)
    generation = _generation(body)
    if progress.run_spec is _UNKNOWN:
        progress.run_spec = k8s.read_run_spec(api, meta)
    current = body.get("status")
    readmitted: status.Event | None = None
    ignored: str | None = None
    if progress.run_spec is None:
        current, readmitted = status.readmit(current, generation, now)
        run_body = {**body, "status": current}
    else:
        if progress.judged is None or progress.judged[0] != generation:
            progress.judged = (generation, ignored_change(body, progress.run_spec, settings))
        ignored = progress.judged[1]
        # The run keeps its spec, except the suspend switch, which it follows live.
        live: dict[str, Any] = body.get("spec") or {}
        switch = {"suspend": live["suspend"]} if "suspend" in live else {}
        run_body = {**body, "spec": {**progress.run_spec, **switch}}
    admitted = admit(
        run_body, settings, now, lambda ref: run_of(k8s.read_experiment(api, namespace, ref))
    )
    if isinstance(admitted, status.Decision):
        if readmitted is not None:
            admitted = replace(admitted, events=(readmitted, *admitted.events))
        k8s.apply(api, meta, admitted, current, (), _no_pod, now)
        return Step(done=admitted.requeue_after is None, requeue_after=admitted.requeue_after)
    finished = (current or {}).get("phase") in status.FINISHED
    try:
        if not progress.children and not finished:
            for child in admitted.children:
                k8s.ensure(api, child, meta.uid)
        progress.children = True
        if progress.run_spec is None and not finished:
            progress.run_spec = spec_document(admitted.spec)
        pods = k8s.list_pods(api, meta)
        decision = status.reconcile(
            admitted.spec, meta, pods, current, now, settings, generation, admitted.ref_runs
        )
        decision = status.spec_change(decision, ignored, now)
        if readmitted is not None:
            clear = ("completionTime",)
            decision = replace(decision, events=(readmitted, *decision.events), clear=clear)
        if decision.create and not decision.delete and not progress.first_pods and not readmitted:
            # The first round creates the pods; the status it computed predates them.
            # Writing it would be overwritten at once, so look again first: one status
            # write (and one event) fewer per experiment.
            k8s.apply_pods(api, meta, decision, pods, admitted.render)
            progress.first_pods = True
            return Step(done=False, requeue_after=0.0)
        progress.first_pods = True
        k8s.apply(api, meta, decision, current, pods, admitted.render, now)
        if decision.create:
            # Pod events skip ADDED (see handlers.pod_event): count the new pods now.
            return Step(done=False, requeue_after=0.0)
    except (k8s.ChildConflict, k8s.Rejected) as problem:
        reason = "ChildConflict" if isinstance(problem, k8s.ChildConflict) else "PodRejected"
        failed = status.blocked(current, reason, str(problem), now, generation)
        k8s.apply(api, meta, failed, current, (), _no_pod, now)
        # Look once more: the finished status now applies cleanPodPolicy to created pods.
        progress.children = True
        return Step(done=False, requeue_after=0.0)
    over = decision.status.phase in status.FINISHED and decision.requeue_after is None
    return Step(
        done=over or decision.delete_experiment,
        requeue_after=decision.requeue_after,
        gone=decision.delete_experiment,
    )


async def _wait(wake: asyncio.Event, timeout: float) -> None:
    """Until a pod event wakes this loop, or ``timeout`` seconds pass."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)


async def loop(
    api: k8s.Api,
    settings: Settings,
    namespace: str,
    name: str,
    wake: asyncio.Event,
    warn: Callable[[str], None],
) -> None:
    """Reconcile until the Experiment is gone; ``wake`` (set on pod events and on a new
    generation) looks sooner, and is all a finished experiment waits for.

    Cancelling it (kopf does when the Experiment is deleted or the operator stops) lets
    a round already running in its thread finish harmlessly: every action is idempotent.
    """
    progress = Progress()
    backoff = RETRY_SECONDS[0]
    while True:
        wake.clear()
        try:
            step = await asyncio.to_thread(reconcile, api, settings, namespace, name, progress)
        except k8s.RETRYABLE as problem:
            warn(f"reconcile failed, retrying in {backoff:.1f}s: {problem}")
            await _wait(wake, backoff)
            backoff = min(backoff * 2, RETRY_SECONDS[1])
            continue
        backoff = RETRY_SECONDS[0]
        if step.gone:
            return
        if step.done:
            # Nothing to watch until the spec changes: sleep until a new generation.
            await wake.wait()
            continue
        timeout = RESYNC_SECONDS if step.requeue_after is None else step.requeue_after
        await _wait(wake, min(timeout, RESYNC_SECONDS))
        if wake.is_set():
            # Pods change in bursts (a gang starting, a node lost): one look for all.
            await asyncio.sleep(DEBOUNCE_SECONDS)
