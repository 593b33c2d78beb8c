"""Pods -> the Experiment's status, plus what to do about it. Pure: no I/O, no clock.

The reconcile round (``incluster_operator.reconcile``) lists the experiment's pods, calls
``reconcile()`` with the previous status and the current time, then executes the returned
``Decision``: create the missing pods, delete the listed ones, patch the status, post the
events, delete the Experiment when its TTL has expired and look again after
``requeue_after`` seconds. Keeping every rule here
(success policy, backoff, deadline, cleanup, TTL) makes them testable without a cluster,
and the reconcile round stays a thin loop around API calls.

Idempotence: the same inputs give the same decision, and a decision executed twice does
no harm. A failed pod is counted once: its uid is remembered in ``status.retriedPods``
until it is gone, so a lagging watch that shows it again does not spend backoff twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import pydantic
from incluster import contract

from incluster_operator import restarts
from incluster_operator.api import names
from incluster_operator.api.models import (
    Condition,
    ExperimentSpec,
    ExperimentStatus,
    Phase,
    ReplicaStatus,
)
from incluster_operator.api.times import format_time, parse_time
from incluster_operator.api.validation import InvalidSpec
from incluster_operator.render.context import ExperimentMeta, outputs_path, run_id
from incluster_operator.settings import Settings

#: Kueue's plain pod group label, and the annotation that ends a group that will not
#: succeed (https://kueue.sigs.k8s.io/docs/tasks/run/plain_pods/#termination).
KUEUE_GROUP_LABEL = "kueue.x-k8s.io/pod-group-name"
KUEUE_RETRIABLE_ANNOTATION = "kueue.x-k8s.io/retriable-in-group"

#: Exit codes at or above this are signals (killed, OOM, preempted): worth a retry.
RETRYABLE_EXIT_CODE = 128

LEADERS = (contract.MASTER, contract.CHIEF)
FINISHED: tuple[Phase, ...] = ("Succeeded", "Failed")


@dataclass(frozen=True)
class ObservedPod:
    """The facts about one pod that the status rules use."""

    name: str
    uid: str
    task_type: str
    index: int
    phase: str
    restarts: int
    exit_code: int | None
    reason: str
    deleting: bool
    #: The whole-experiment attempt the pod was created for (label; 1 when absent).
    attempt: int = 1
    #: Scheduling gates still on the pod (Kueue's admission gate while queued).
    gates: tuple[str, ...] = ()
    #: ``DisruptionTarget=True``: preempted, evicted or its node drained; not its fault.
    disrupted: bool = False
    #: A member of a Kueue pod group (``kueue.x-k8s.io/pod-group-name``).
    kueue_group: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_type, self.index)

    @property
    def active(self) -> bool:
        return self.phase not in ("Succeeded", "Failed")

    def describe(self) -> str:
        detail = f"exit code {self.exit_code}" if self.exit_code is not None else "no exit code"
        return f"pod {self.name} failed ({detail}{', ' + self.reason if self.reason else ''})"


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def observe(pod: Mapping[str, Any]) -> ObservedPod | None:
    """Parse a pod object (as the API returns it); None when it is not a replica pod."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    task_type = labels.get(names.LABEL_REPLICA_TYPE)
    index = str(labels.get(names.LABEL_REPLICA_INDEX, ""))
    if task_type not in contract.TASK_TYPES or not index.isdigit():
        return None
    status = pod.get("status") or {}
    statuses = list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )
    restarts = sum(_int(s.get("restartCount")) for s in statuses)
    exit_code: int | None = None
    reason = str(status.get("reason") or "")
    for s in statuses:
        for state in ((s.get("state") or {}), (s.get("lastState") or {})):
            terminated = state.get("terminated") or {}
            code = terminated.get("exitCode")
            if isinstance(code, int) and code != 0 and (exit_code is None or code > exit_code):
                exit_code = code
                reason = reason or str(terminated.get("reason") or "")
    return ObservedPod(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        task_type=str(task_type),
        index=int(index),
        phase=str(status.get("phase") or "Pending"),
        restarts=restarts,
        exit_code=exit_code,
        reason=reason,
        deleting=bool(metadata.get("deletionTimestamp")),
        attempt=_attempt_label(labels.get(names.LABEL_ATTEMPT)),
        gates=tuple(
            str(g.get("name", "")) for g in (pod.get("spec") or {}).get("schedulingGates") or []
        ),
        disrupted=any(
            c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ),
        kueue_group=KUEUE_GROUP_LABEL in labels,
    )


def _attempt_label(value: Any) -> int:
    """A pod's attempt label; pods from before attempts existed belong to attempt 1."""
    text = str(value or "1")
    return int(text) if text.isdigit() and int(text) >= 1 else 1


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the Experiment."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What the reconcile round must do now; every field is data, executed in this order."""

    status: ExperimentStatus
    #: Replicas (type, index) whose pod to create: render_pod(plan, type, index).
    create: tuple[tuple[str, int], ...] = ()
    #: Pod names to delete (failed pods to recreate, cleanup after the end, strays).
    delete: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    #: ttlSecondsAfterFinished has expired: delete the Experiment (children follow).
    delete_experiment: bool = False
    #: Reconcile again after this many seconds even without a pod event (deadline, TTL).
    requeue_after: float | None = None
    #: Pods to annotate ``kueue.x-k8s.io/retriable-in-group: "false"`` before any delete:
    #: the experiment is over, so Kueue may finish the group's Workload and free its quota.
    release_group: tuple[str, ...] = ()
    #: Status keys (API names) to remove: what an earlier generation's failure left.
    clear: tuple[str, ...] = ()

    def status_patch(self) -> dict[str, Any]:
        """The status as a merge patch body; ``tracking`` is left to the replicas."""
        patch = self.status.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"tracking"}
        )
        if self.status.paused_since is None:
            patch["pausedSince"] = None  # a merge patch removes a key only with null
        patch.update(dict.fromkeys(self.clear))  # null removes a key in a merge patch
        return patch


def previous_status(previous: Mapping[str, Any] | None) -> ExperimentStatus:
    """The last written status; a malformed one is treated as none (we rewrite it)."""
    try:
        return ExperimentStatus.model_validate(dict(previous or {}), strict=False)
    except pydantic.ValidationError:
        return ExperimentStatus()


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
) -> list[Condition]:
    """Conditions with ``type_`` set; lastTransitionTime moves only when status flips."""
    value: Literal["True", "False"] = "True" if status else "False"

    def updated(previous: Condition | None) -> Condition:
        if previous is not None and previous.status == value:
            since = previous.last_transition_time
        else:
            since = format_time(now)
        return Condition(
            type=type_, status=value, reason=reason, message=message, last_transition_time=since
        )

    out = [updated(c) if c.type == type_ else c for c in conditions]
    if all(c.type != type_ for c in conditions):
        out.append(updated(None))
    return out


def _replica_statuses(
    pods: Iterable[ObservedPod], types: Iterable[str]
) -> dict[str, ReplicaStatus]:
    counts = {t: {"active": 0, "succeeded": 0, "failed": 0} for t in types}
    for pod in pods:
        bucket = counts.setdefault(pod.task_type, {"active": 0, "succeeded": 0, "failed": 0})
        if pod.phase == "Succeeded":
            bucket["succeeded"] += 1
        elif pod.phase == "Failed":
            bucket["failed"] += 1
        else:
            bucket["active"] += 1
    return {t: ReplicaStatus(**c) for t, c in sorted(counts.items())}


def _present(
    status: ExperimentStatus,
    pods: Iterable[ObservedPod],
    spec: ExperimentSpec,
    gone: Iterable[str] = (),
) -> ExperimentStatus:
    """READY and replica counts of the pods that exist and stay (not deleting or ``gone``).

    A finished experiment's pods are cleaned up: its READY must say 0/4 then, not the
    4/4 of the moment it ended.
    """
    leaving = set(gone)
    desired = {(t, i) for t, r in spec.replicas.items() for i in range(r.replicas)}
    staying: dict[tuple[str, int], ObservedPod] = {}
    for pod in pods:
        if pod.key in desired and not pod.deleting and pod.name not in leaving:
            staying.setdefault(pod.key, pod)
    running = sum(1 for p in staying.values() if p.phase == "Running")
    return status.model_copy(
        update={
            "replica_statuses": _replica_statuses(staying.values(), spec.replicas),
            "ready": f"{running}/{len(desired)}",
        }
    )


def _cleanup(pods: Iterable[ObservedPod], policy: str) -> tuple[str, ...]:
    """Pods to delete once the experiment has finished, per cleanPodPolicy."""
    if policy == "None":
        return ()
    return tuple(sorted(p.name for p in pods if not p.deleting and (policy == "All" or p.active)))


def _ttl(status: ExperimentStatus, ttl: int | None, now: datetime) -> tuple[bool, float | None]:
    completed = parse_time(status.completion_time)
    if ttl is None or completed is None:
        return False, None
    remaining = (completed + timedelta(seconds=ttl) - now).total_seconds()
    return (True, None) if remaining <= 0 else (False, remaining)


def _leader(spec: ExperimentSpec) -> str | None:
    return next((t for t in LEADERS if t in spec.replicas), None)


def _succeeded(
    spec: ExperimentSpec, by_key: Mapping[tuple[str, int], ObservedPod], policy: str
) -> str | None:
    """A message when the success policy is met, else None."""

    def done(key: tuple[str, int]) -> bool:
        pod = by_key.get(key)
        return pod is not None and pod.phase == "Succeeded"

    leader = _leader(spec)
    if policy == "allWorkers":
        keys = [(leader, 0)] if leader else []
        worker = spec.replicas.get(contract.WORKER)
        keys += [(contract.WORKER, i) for i in range(worker.replicas if worker else 0)]
        if keys and all(done(k) for k in keys):
            return f"all {len(keys)} {'master/chief and ' if leader else ''}worker pods succeeded"
        return None
    deciding = (leader, 0) if leader else (contract.WORKER, 0)
    if done(deciding):
        return f"{deciding[0]} {deciding[1]} succeeded"
    return None


def _finish(
    status: ExperimentStatus,
    phase: Phase,
    reason: str,
    message: str,
    pods: Sequence[ObservedPod],
    spec: ExperimentSpec | None,
    now: datetime,
) -> Decision:
    conditions = set_condition(status.conditions, "Running", False, reason, message, now)
    conditions = set_condition(conditions, phase, True, reason, message, now)
    finished = status.model_copy(
        update={
            "phase": phase,
            "conditions": conditions,
            "completion_time": format_time(now),
            "retried_pods": [],
        }
    )
    policy = spec.run_policy.clean_pod_policy if spec else "None"
    ttl = spec.run_policy.ttl_seconds_after_finished if spec else None
    expired, requeue = _ttl(finished, ttl, now)
    # Kueue counts a group as done only when every pod succeeded; any other end would
    # keep its quota waiting for replacements unless one pod says it is not retriable.
    members = [p for p in pods if p.kueue_group]
    done = phase == "Succeeded" and all(p.phase == "Succeeded" for p in members)
    live = sorted(p.name for p in members if not p.deleting)
    delete = _cleanup(pods, policy)
    if spec is not None:
        finished = _present(finished, pods, spec, delete)
    return Decision(
        status=finished,
        delete=delete,
        events=(Event("Normal" if phase == "Succeeded" else "Warning", reason, message),),
        delete_experiment=expired,
        requeue_after=requeue,
        release_group=() if done else tuple(live[:1]),
    )


@dataclass(frozen=True)
class _Retries:
    """The outcome of looking at failed pods: retry some, or fail the experiment."""

    failures: int
    retried: list[str]
    delete: list[str]
    events: tuple[Event, ...]
    #: (reason, message) when the experiment must fail.
    verdict: tuple[str, str] | None = None


def _retryable(policy: str, pod: ObservedPod) -> bool:
    if policy == "OnFailure":
        return True
    return policy == "ExitCode" and (pod.exit_code is None or pod.exit_code >= RETRYABLE_EXIT_CODE)


def _retries(
    spec: ExperimentSpec,
    by_key: Mapping[tuple[str, int], ObservedPod],
    observed: Sequence[ObservedPod],
    status: ExperimentStatus,
) -> _Retries:
    """Per failed pod: recreate it (counted once, by uid) or fail the experiment."""
    live = {p.uid for p in observed}
    retried = [uid for uid in status.retried_pods if uid in live]
    failures = status.failures
    backoff = spec.run_policy.backoff_limit
    delete: list[str] = []
    events: list[Event] = []
    for key in sorted(by_key):
        pod = by_key[key]
        if pod.phase != "Failed" or pod.deleting:
            continue
        if pod.uid in retried:
            # Counted already; its deletion may have failed, so ask again (idempotent).
            delete.append(pod.name)
            continue
        if pod.disrupted:
            # Preempted, evicted, drained: recreated, not counted (as a Job's podFailurePolicy
            # with onPodConditions DisruptionTarget: Ignore).
            retried.append(pod.uid)
            delete.append(pod.name)
            events.append(Event("Normal", "PodDisrupted", f"{pod.describe()}; recreating it"))
            continue
        policy = spec.replicas[pod.task_type].restart_policy
        if not _retryable(policy, pod):
            why = (
                "the exit code is not retryable (< 128)"
                if policy == "ExitCode"
                else "restartPolicy is Never"
            )
            verdict = ("PodFailed", f"{pod.describe()}; {why}")
            return _Retries(failures + 1, retried, delete, tuple(events), verdict)
        if failures + status.restarts + 1 > backoff:
            verdict = (
                "BackoffLimitExceeded",
                f"{pod.describe()}; runPolicy.backoffLimit={backoff} retries are used up",
            )
            return _Retries(failures + 1, retried, delete, tuple(events), verdict)
        failures += 1
        retried.append(pod.uid)
        delete.append(pod.name)
        events.append(Event("Warning", "PodRecreated", f"{pod.describe()}; recreating it"))
    if failures + status.restarts > backoff:
        verdict = (
            "BackoffLimitExceeded",
            f"{status.restarts} container restart(s) exceed runPolicy.backoffLimit={backoff}",
        )
        return _Retries(failures, retried, delete, tuple(events), verdict)
    return _Retries(failures, retried, delete, tuple(events))


def reconcile(
    spec: ExperimentSpec,
    meta: ExperimentMeta,
    pods: Iterable[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
    now: datetime,
    settings: Settings,
    generation: int | None = None,
    ref_runs: Mapping[str, str] | None = None,
) -> Decision:
    """The new status of a valid experiment and the actions that follow from its pods.

    ``ref_runs`` (experiment ref -> run id) is recorded in ``status.outputsRefsRuns``.
    """
    prev = previous_status(previous)
    observed = [p for p in (observe(pod) for pod in pods) if p is not None]
    desired = {(t, i) for t, r in spec.replicas.items() for i in range(r.replicas)}
    by_key: dict[tuple[str, int], ObservedPod] = {}
    strays: list[str] = []
    #: Replicas whose name is still taken by a pod of an earlier attempt (being deleted).
    blocked: set[tuple[str, int]] = set()
    for pod in sorted(observed, key=lambda p: (p.deleting, p.name)):
        if pod.attempt != prev.attempt:
            blocked.add(pod.key)
            if not pod.deleting:
                strays.append(pod.name)
        elif pod.key in desired and pod.key not in by_key:
            by_key[pod.key] = pod
        elif not pod.deleting:
            strays.append(pod.name)
    running = sum(1 for p in by_key.values() if p.phase == "Running" and not p.deleting)
    status = prev.model_copy(
        update={
            "replica_statuses": _replica_statuses(by_key.values(), spec.replicas),
            "ready": f"{running}/{len(desired)}",
            "outputs_path": outputs_path(spec, meta, settings),
            "run_id": run_id(meta),
            "project": spec.project,
            "outputs_refs_runs": dict(ref_runs) if ref_runs else prev.outputs_refs_runs,
            "restarts": sum(p.restarts for p in by_key.values()),
            "observed_generation": generation
            if generation is not None
            else prev.observed_generation,
        }
    )

    if prev.phase in FINISHED:
        # The outcome is final; the counts follow the pods that are left (cleanup may
        # delete them, or someone else). Only cleanup and TTL remain to do.
        final = prev.model_copy(update={"observed_generation": status.observed_generation})
        delete = _cleanup(observed, spec.run_policy.clean_pod_policy)
        final = _present(final, observed, spec, delete)
        expired, requeue = _ttl(final, spec.run_policy.ttl_seconds_after_finished, now)
        return Decision(
            status=final,
            delete=delete,
            delete_experiment=expired,
            requeue_after=requeue,
        )

    if spec.suspend:
        return _suspend(status, prev, observed, now)
    status, resumed = _resume(status, prev, now)
    start = parse_time(prev.start_time) or now
    status = status.model_copy(update={"start_time": format_time(start)})
    if any(c.type == REFS_CONDITION and c.status == "False" for c in status.conditions):
        resolved = ", ".join(f"{r} -> run {u}" for r, u in sorted(status.outputs_refs_runs.items()))
        status = status.model_copy(
            update={
                "conditions": set_condition(
                    status.conditions, REFS_CONDITION, True, "OutputsRefsResolved", resolved, now
                )
            }
        )
    if prev.start_time is None:
        status = status.model_copy(
            update={
                "conditions": set_condition(
                    status.conditions,
                    "Created",
                    True,
                    "PodsCreated",
                    f"creating {len(desired)} pod(s) and the headless service {meta.name}",
                    now,
                )
            }
        )

    gated = [p for p in by_key.values() if p.gates and not p.deleting and p.phase == "Pending"]
    status = _queue_clock(status, gated, len(desired), now)
    deadline = spec.run_policy.active_deadline_seconds
    used = (now - start).total_seconds() - status.paused_seconds
    if deadline is not None and not gated and used >= deadline:
        return _finish(
            status,
            "Failed",
            "DeadlineExceeded",
            f"the experiment ran longer than runPolicy.activeDeadlineSeconds={deadline}",
            observed,
            spec,
            now,
        )

    policy = spec.run_policy.success_policy or settings.success_policy
    success = _succeeded(spec, by_key, policy)
    if success is not None:
        return _finish(status, "Succeeded", "ExperimentSucceeded", success, observed, spec, now)

    if spec.run_policy.failure_policy.restart_experiment:
        restart = _restart_experiment(spec, by_key, status, now)
        if restart is not None:
            if restart.status.phase in FINISHED:
                return _finish(
                    restart.status,
                    "Failed",
                    restart.events[0].reason,
                    restart.events[0].message,
                    observed,
                    spec,
                    now,
                )
            return restart
    retries = _retries(spec, by_key, observed, status)
    if retries.verdict is not None:
        reason, message = retries.verdict
        failed = status.model_copy(update={"failures": retries.failures})
        return _finish(failed, "Failed", reason, message, observed, spec, now)
    failures, retried, to_delete = retries.failures, retries.retried, retries.delete
    events = list(retries.events)
    backoff = spec.run_policy.backoff_limit

    create = tuple(sorted(k for k in desired if k not in by_key and k not in blocked))
    conditions = status.conditions
    events.extend(resumed)
    if to_delete:
        message = f"recreating {', '.join(sorted(to_delete))} (failure {failures} of {backoff})"
        conditions = set_condition(conditions, "Restarting", True, "PodRecreated", message, now)
    all_up = (
        not create
        and not to_delete
        and all(p.phase in ("Running", "Succeeded") and not p.deleting for p in by_key.values())
    )
    phase: Phase = "Running" if all_up else "Pending"
    if blocked:
        phase = "Restarting"
    elif gated:
        phase = "Queued"
    if all_up:
        conditions = set_condition(
            conditions, "Running", True, "PodsRunning", f"all {len(desired)} pod(s) are up", now
        )
        if any(c.type == "Restarting" and c.status == "True" for c in conditions):
            conditions = set_condition(
                conditions,
                "Restarting",
                False,
                "PodsRunning",
                f"recreated pods are up (attempt {status.attempt})",
                now,
            )
    if phase != prev.phase:
        events.append(
            Event("Normal", f"Experiment{phase}", f"{running}/{len(desired)} pod(s) running")
        )
    remaining = None
    if deadline is not None and not gated:
        remaining = max(deadline - used, 0.0)
    return Decision(
        status=status.model_copy(
            update={
                "phase": phase,
                "conditions": conditions,
                "failures": failures,
                "retried_pods": sorted(retried),
            }
        ),
        create=create,
        delete=tuple(sorted(to_delete + strays)),
        events=tuple(events),
        requeue_after=remaining,
    )


def _pause(status: ExperimentStatus, now: datetime) -> ExperimentStatus:
    """Stop the deadline clock (suspended or queued); idempotent."""
    if status.paused_since is not None:
        return status
    return status.model_copy(update={"paused_since": format_time(now)})


def _unpause(status: ExperimentStatus, now: datetime) -> ExperimentStatus:
    """Restart the deadline clock, adding the paused time since startTime."""
    since = parse_time(status.paused_since)
    if since is None:
        return status
    start = parse_time(status.start_time)
    paused = status.paused_seconds
    if start is not None:
        paused += int((now - max(since, start)).total_seconds())
    return status.model_copy(update={"paused_since": None, "paused_seconds": paused})


def _suspend(
    status: ExperimentStatus,
    prev: ExperimentStatus,
    observed: Sequence[ObservedPod],
    now: datetime,
) -> Decision:
    """spec.suspend: delete every pod, keep the status, phase Suspended, clock paused."""
    to_delete = tuple(sorted(p.name for p in observed if not p.deleting))
    message = "spec.suspend is true: no pods run; set it to false to resume"
    conditions = set_condition(status.conditions, "Suspended", True, "Suspended", message, now)
    if any(c.type == "Running" and c.status == "True" for c in conditions):
        conditions = set_condition(conditions, "Running", False, "Suspended", message, now)
    events = () if prev.phase == "Suspended" else (Event("Normal", "Suspended", message),)
    suspended = _pause(status, now).model_copy(
        update={"phase": "Suspended", "conditions": conditions}
    )
    return Decision(status=suspended, delete=to_delete, events=events)


def _resume(
    status: ExperimentStatus, prev: ExperimentStatus, now: datetime
) -> tuple[ExperimentStatus, list[Event]]:
    """Leaving suspension: the clock runs again and the pods come back."""
    if prev.phase != "Suspended":
        return status, []
    message = "spec.suspend is false: recreating the pods"
    conditions = set_condition(status.conditions, "Suspended", False, "Resumed", message, now)
    resumed = _unpause(status, now).model_copy(update={"conditions": conditions})
    return resumed, [Event("Normal", "Resumed", message)]


def _queue_clock(
    status: ExperimentStatus, gated: Sequence[ObservedPod], total: int, now: datetime
) -> ExperimentStatus:
    """Queued while pods carry scheduling gates (Kueue admission): the clock is paused."""
    queued = any(c.type == "Queued" and c.status == "True" for c in status.conditions)
    if gated:
        gates = sorted({g for p in gated for g in p.gates})
        message = (
            f"{len(gated)} of {total} pod(s) wait for admission (scheduling gates: "
            f"{', '.join(gates)})"
        )
        conditions = set_condition(status.conditions, "Queued", True, "Gated", message, now)
        return _pause(status, now).model_copy(update={"conditions": conditions})
    if not queued:
        return status
    conditions = set_condition(
        status.conditions, "Queued", False, "Admitted", "the scheduling gates are lifted", now
    )
    return _unpause(status, now).model_copy(update={"conditions": conditions})


def _restart_experiment(
    spec: ExperimentSpec,
    by_key: Mapping[tuple[str, int], ObservedPod],
    status: ExperimentStatus,
    now: datetime,
) -> Decision | None:
    """failurePolicy.restartExperiment: a new attempt, a final failure, or None.

    The new attempt is only written here (no pod is deleted in this round): the status
    is the commit point, and the next round deletes the previous attempt's pods because
    their attempt label is old. A crash between the two loses nothing.
    """
    failures = [
        restarts.Failure(p.name, p.exit_code, p.disrupted)
        for p in by_key.values()
        if p.phase == "Failed" and not p.deleting
    ]
    policy = spec.run_policy.failure_policy
    verdict = restarts.decide(policy, failures, status.experiment_restarts)
    if verdict is None:
        return None
    if verdict.action == "fail":
        failed = status.model_copy(update={"failures": status.failures + 1})
        return Decision(
            status=failed.model_copy(update={"phase": "Failed"}),
            events=(Event("Warning", verdict.reason, verdict.message),),
        )
    attempt = status.attempt + 1
    message = f"{verdict.message}; attempt {attempt} starts"
    conditions = set_condition(status.conditions, "Restarting", True, verdict.reason, message, now)
    conditions = set_condition(conditions, "Running", False, verdict.reason, message, now)
    restarted = status.model_copy(
        update={
            "phase": "Restarting",
            "conditions": conditions,
            "attempt": attempt,
            "experiment_restarts": status.experiment_restarts + int(verdict.counted),
            "retried_pods": [],
        }
    )
    return Decision(
        status=restarted,
        events=(Event("Warning", verdict.reason, message),),
        requeue_after=0.0,
    )


def invalid(
    error: InvalidSpec,
    previous: Mapping[str, Any] | None,
    now: datetime,
    generation: int | None = None,
) -> Decision:
    """A spec that cannot run: Failed with an InvalidSpec condition; create nothing.

    Idempotent: the same error keeps its transition time and posts no new event.
    """
    prev = previous_status(previous)
    message = str(error)
    same = any(
        c.type == "InvalidSpec" and c.status == "True" and c.message == message
        for c in prev.conditions
    )
    conditions = set_condition(prev.conditions, "InvalidSpec", True, "InvalidSpec", message, now)
    conditions = set_condition(conditions, "Failed", True, "InvalidSpec", message, now)
    status = prev.model_copy(
        update={
            "phase": "Failed",
            "conditions": conditions,
            "completion_time": prev.completion_time if same else format_time(now),
            "observed_generation": generation,
        }
    )
    events = () if same else (Event("Warning", "InvalidSpec", message),)
    return Decision(status=status, events=events)


#: The condition that says whether every ``outputsRefs.experiments`` entry resolved.
REFS_CONDITION = "OutputsRefsReady"
#: How often an experiment waiting for a referenced Experiment looks again.
REFS_RETRY_SECONDS = 10.0


def waiting_for_refs(
    missing: Sequence[str],
    namespace: str,
    previous: Mapping[str, Any] | None,
    now: datetime,
    generation: int | None = None,
) -> Decision:
    """``Pending`` without pods while a referenced Experiment does not exist; look again.

    The pods would mount a run of it, and there is none: starting them anyway would
    hand training an empty directory. Idempotent: the same message posts no new event.
    """
    prev = previous_status(previous)
    names_ = ", ".join(repr(ref.rsplit("/", 1)[-1]) for ref in missing)
    message = (
        f"spec.outputsRefs.experiments: no Experiment {names_} in namespace {namespace!r}; "
        "the pods start once it exists (create it, or remove the reference)"
    )
    same = any(c.type == REFS_CONDITION and c.message == message for c in prev.conditions)
    conditions = set_condition(
        prev.conditions, REFS_CONDITION, False, "OutputsRefNotFound", message, now
    )
    status = prev.model_copy(
        update={
            "phase": "Pending",
            "conditions": conditions,
            "observed_generation": generation,
        }
    )
    events = () if same else (Event("Warning", "OutputsRefNotFound", message),)
    return Decision(status=status, events=events, requeue_after=REFS_RETRY_SECONDS)


def blocked(
    previous: Mapping[str, Any] | None,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> Decision:
    """``Failed`` for a problem found while creating children (a name taken, a rejected pod).

    Like ``invalid`` it is idempotent: the same problem keeps its transition time and
    posts no second event.
    """
    prev = previous_status(previous)
    same = any(c.type == "Failed" and c.message == message for c in prev.conditions)
    conditions = set_condition(prev.conditions, "Failed", True, reason, message, now)
    finished = prev.model_copy(
        update={
            "phase": "Failed",
            "conditions": conditions,
            "completion_time": prev.completion_time or format_time(now),
            "observed_generation": generation
            if generation is not None
            else prev.observed_generation,
        }
    )
    events = () if same else (Event("Warning", reason, message),)
    return Decision(status=finished, events=events)


#: Conditions a failure before any pod leaves; a valid new generation clears them.
_ADMISSION_FAILURES = ("Failed", "InvalidSpec")


def readmit(
    previous: Mapping[str, Any] | None, generation: int | None, now: datetime
) -> tuple[dict[str, Any] | None, Event | None]:
    """The status to start from when a new generation may run after an earlier one failed.

    Only an experiment that failed before any pod existed (invalid spec, a name taken, a
    rejected pod) and whose spec has changed since (``generation`` is not the observed
    one) is looked at again; anything else is returned unchanged with no event. The
    caller validates the new spec next: a still invalid one fails again, naming the new
    problem.
    """
    prev = previous_status(previous)
    if prev.phase != "Failed" or generation is None or prev.observed_generation == generation:
        return (dict(previous) if previous is not None else None), None
    message = (
        f"generation {generation} is being admitted again: generation "
        f"{prev.observed_generation} failed before any pod existed"
    )
    conditions = [
        c.model_copy(
            update={
                "status": "False",
                "reason": "SpecChanged",
                "message": message,
                "last_transition_time": format_time(now),
            }
        )
        if c.type in _ADMISSION_FAILURES and c.status == "True"
        else c
        for c in prev.conditions
    ]
    fresh = prev.model_copy(
        update={"phase": None, "conditions": conditions, "completion_time": None}
    )
    event = Event("Normal", "SpecChanged", message)
    return fresh.model_dump(mode="json", by_alias=True, exclude_none=True), event


#: The condition that says a spec change of a started run was not applied.
SPEC_IGNORED = "SpecChangeIgnored"


def spec_change(decision: Decision, ignored: str | None, now: datetime) -> Decision:
    """Report a spec change that cannot take effect: a condition, and an Event once.

    ``ignored`` says what changed and what to do (None: the spec is the run's own, and
    a condition set earlier turns False).
    """
    current = decision.status
    before = next((c for c in current.conditions if c.type == SPEC_IGNORED), None)
    if ignored is None:
        if before is None or before.status == "False":
            return decision
        conditions = set_condition(
            current.conditions,
            SPEC_IGNORED,
            False,
            "SpecMatchesRun",
            "the spec is the run's own",
            now,
        )
        return replace(decision, status=current.model_copy(update={"conditions": conditions}))
    conditions = set_condition(current.conditions, SPEC_IGNORED, True, SPEC_IGNORED, ignored, now)
    events = decision.events
    if before is None or before.status != "True" or before.message != ignored:
        events = (*events, Event("Warning", SPEC_IGNORED, ignored))
    return replace(
        decision, status=current.model_copy(update={"conditions": conditions}), events=events
    )


__all__ = [
    "Decision",
    "Event",
    "ObservedPod",
    "blocked",
    "invalid",
    "observe",
    "readmit",
    "reconcile",
    "spec_change",
    "waiting_for_refs",
]
