"""Sharing a cluster: Kueue's plain pod group, gang scheduling (PodGroup), priority. Pure.

Why apart from ``pods``: these are the only parts of a pod that other controllers
read (Kueue's webhook, Volcano, the scheduler-plugins coscheduling plugin), and their
names follow those projects' documentation, not ours (docs/scheduling.md names the
versions). A template that already sets one of them differently is an ``InvalidSpec``.
"""

from __future__ import annotations

from typing import Any, Final

from incluster_operator.api.models import ExperimentSpec
from incluster_operator.api.validation import InvalidSpec
from incluster_operator.render.context import Plan

# Kueue (plain pods, pod groups): https://kueue.sigs.k8s.io/docs/tasks/run/plain_pods/
KUEUE_QUEUE_LABEL: Final = "kueue.x-k8s.io/queue-name"
KUEUE_GROUP_LABEL: Final = "kueue.x-k8s.io/pod-group-name"
KUEUE_TOTAL_ANNOTATION: Final = "kueue.x-k8s.io/pod-group-total-count"

# scheduler-plugins coscheduling (PodGroup scheduling.x-k8s.io/v1alpha1 and its pod label).
COSCHEDULING_GROUP_LABEL: Final = "scheduling.x-k8s.io/pod-group"
COSCHEDULING_API: Final = "scheduling.x-k8s.io/v1alpha1"
COSCHEDULING_SCHEDULER: Final = "scheduler-plugins-scheduler"

# Volcano (PodGroup scheduling.volcano.sh/v1beta1; the group is named by an annotation).
VOLCANO_GROUP_ANNOTATION: Final = "scheduling.k8s.io/group-name"
VOLCANO_API: Final = "scheduling.volcano.sh/v1beta1"
VOLCANO_SCHEDULER: Final = "volcano"

#: schedulerName per ``spec.schedulingPolicy.scheduler``.
SCHEDULER_NAMES: Final = {"volcano": VOLCANO_SCHEDULER, "scheduler-plugins": COSCHEDULING_SCHEDULER}


def total_replicas(spec: ExperimentSpec) -> int:
    """Every pod of the experiment: Kueue's group size and minAvailable's default."""
    return sum(r.replicas for r in spec.replicas.values())


def min_member(spec: ExperimentSpec) -> int:
    """How many pods must be placed together (``minAvailable``, default every replica)."""
    return spec.scheduling_policy.min_available or total_replicas(spec)


def group_name(p: Plan) -> str:
    """The pod group (Kueue's group, the PodGroup): one per experiment, across attempts.

    Reused across attempts so that Kueue keeps the admitted workload for replacement
    pods instead of queueing the group again.
    """
    return p.meta.name


def kueue_queue(spec: ExperimentSpec, experiment_labels: dict[str, str]) -> str | None:
    """The Kueue LocalQueue: the spec's queue (unless it names a Volcano queue) or label."""
    policy = spec.scheduling_policy
    if policy.queue is not None and policy.scheduler != "volcano":
        return policy.queue
    return experiment_labels.get(KUEUE_QUEUE_LABEL)


def _set(mapping: dict[str, Any], key: str, value: str, where: str) -> None:
    """Set one of the operator's keys; the template may repeat it, not contradict it."""
    if key in mapping and mapping[key] != value:
        raise InvalidSpec(
            [
                f"{where}: {mapping[key]!r} conflicts with {value!r} set from "
                "spec.schedulingPolicy (or the Experiment's queue label); remove it from the "
                "template"
            ]
        )
    mapping[key] = value


def schedule_pod(p: Plan, pod: dict[str, Any], where: str) -> dict[str, Any]:
    """Add queue, gang and priority fields to a rendered pod (``where``: its template)."""
    policy = p.spec.scheduling_policy
    metadata = pod["metadata"]
    spec = pod["spec"]
    labels: dict[str, Any] = metadata["labels"]
    annotations: dict[str, Any] = dict(metadata.get("annotations") or {})
    if p.kueue_queue is not None:
        _set(labels, KUEUE_QUEUE_LABEL, p.kueue_queue, f"{where}.metadata.labels")
        _set(labels, KUEUE_GROUP_LABEL, group_name(p), f"{where}.metadata.labels")
        _set(
            annotations,
            KUEUE_TOTAL_ANNOTATION,
            str(total_replicas(p.spec)),
            f"{where}.metadata.annotations",
        )
    if policy.scheduler is not None:
        _set(spec, "schedulerName", SCHEDULER_NAMES[policy.scheduler], f"{where}.spec")
        if policy.scheduler == "volcano":
            _set(
                annotations,
                VOLCANO_GROUP_ANNOTATION,
                group_name(p),
                f"{where}.metadata.annotations",
            )
        else:
            _set(labels, COSCHEDULING_GROUP_LABEL, group_name(p), f"{where}.metadata.labels")
    if policy.priority_class is not None:
        _set(spec, "priorityClassName", policy.priority_class, f"{where}.spec")
    if annotations:
        metadata["annotations"] = annotations
    return pod


def render_pod_group(p: Plan) -> dict[str, Any] | None:
    """The PodGroup the gang scheduler waits for, or None without ``scheduler``.

    Owned by the Experiment (the caller adds the owner reference), so it goes with it.
    """
    policy = p.spec.scheduling_policy
    if policy.scheduler is None:
        return None
    spec: dict[str, Any] = {"minMember": min_member(p.spec)}
    if policy.scheduler == "volcano":
        api_version = VOLCANO_API
        if policy.queue is not None:
            spec["queue"] = policy.queue
        if policy.priority_class is not None:
            spec["priorityClassName"] = policy.priority_class
    else:
        api_version = COSCHEDULING_API
    return {
        "apiVersion": api_version,
        "kind": "PodGroup",
        "metadata": {"name": group_name(p), "namespace": p.meta.namespace},
        "spec": spec,
    }
