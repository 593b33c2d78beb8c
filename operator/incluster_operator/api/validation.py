"""Validate an Experiment's spec before any child object exists.

An invalid Experiment must produce no pods at all, and its owner must learn from
``kubectl get xp -o yaml`` what to change. So every check the render layer relies on
happens here, up front, and every problem becomes one ``InvalidSpec`` whose message
names the field path (``spec.replicas.worker.replicas``) and the fix. Nothing else may
escape: ``desired.admit`` turns ``InvalidSpec`` into a ``Failed`` status and stops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
from incluster import contract

from incluster_operator.api import names
from incluster_operator.api.models import ExperimentSpec, Scheduler
from incluster_operator.settings import Settings

#: topology.loopback_host encodes the index in 13 bits.
LOOPBACK_MAX_REPLICAS = 8192

#: How many problems one message lists (the rest are summarised as a count).
MAX_PROBLEMS = 5
#: Deepest nesting a spec may have (a pod template with affinities is about 15 deep). The
#: API server accepts 10,000; every recursive step after it (validation, JSON, the
#: context document) would then need a recursion limit nobody should depend on.
MAX_SPEC_DEPTH = 64

_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling (the field is unknown)",
    "string_pattern_mismatch": "use lowercase letters, digits and '-' (a DNS label)",
    "greater_than_equal": "use a value >= {ge}",
    "less_than_equal": "use a value <= {le}",
    "too_short": "give at least one entry",
    "string_too_long": "shorten it",
    "string_too_short": "give a non-empty value",
}


class InvalidSpec(ValueError):
    """The Experiment's spec cannot run; ``problems`` holds one line per field."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        shown = list(self.problems[:MAX_PROBLEMS])
        if len(self.problems) > MAX_PROBLEMS:
            shown.append(f"and {len(self.problems) - MAX_PROBLEMS} more problem(s)")
        super().__init__("; ".join(shown))


def _path(loc: Iterable[int | str]) -> str:
    out = "spec"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _from_pydantic(exc: pydantic.ValidationError) -> InvalidSpec:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        fix = _FIXES.get(error["type"], "").format(**error.get("ctx", {}))
        problems.append(f"{_path(error['loc'])}: {error['msg']}" + (f"; {fix}" if fix else ""))
    return InvalidSpec(problems)


def _template_problems(task_type: str, template: Mapping[str, Any]) -> list[str]:
    where = f"spec.replicas.{task_type}.template"
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, Mapping):
        return [f"{where}.spec: missing; add a pod spec with at least one container"]
    problems = []
    for field in ("containers", "initContainers"):
        containers = pod_spec.get(field)
        if field == "initContainers" and containers is None:
            continue
        if not isinstance(containers, list) or (field == "containers" and not containers):
            problems.append(
                f"{where}.spec.{field}: must be a list"
                + (" with at least one container" if field == "containers" else "")
                + "; add containers with a name and an image"
            )
            continue
        for i, container in enumerate(containers):
            if not isinstance(container, Mapping):
                problems.append(f"{where}.spec.{field}[{i}]: must be an object (a container)")
                continue
            name = container.get("name")
            if not isinstance(name, str) or not names.DNS_LABEL.match(name):
                problems.append(f"{where}.spec.{field}[{i}].name: give a DNS label name")
            if field == "containers" and not isinstance(container.get("image"), str):
                problems.append(f"{where}.spec.{field}[{i}].image: missing; add an image")
            for key in ("env", "volumeMounts"):
                value = container.get(key)
                if value is not None and not (
                    isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
                ):
                    problems.append(f"{where}.spec.{field}[{i}].{key}: must be a list of objects")
    volumes = pod_spec.get("volumes")
    if volumes is not None and not (
        isinstance(volumes, list) and all(isinstance(v, Mapping) for v in volumes)
    ):
        problems.append(f"{where}.spec.volumes: must be a list of objects")
    metadata = template.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        problems.append(f"{where}.metadata: must be an object")
    elif metadata is not None:
        for key in ("labels", "annotations"):
            value = metadata.get(key)
            if value is not None and not (
                isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values())
            ):
                problems.append(f"{where}.metadata.{key}: must map names to strings")
    return problems


def _name_problems(name: str, spec: ExperimentSpec) -> list[str]:
    problems = []
    if len(name) > names.DNS_LABEL_MAX or not names.DNS_1035_LABEL.match(name):
        problems.append(
            f"metadata.name: {name!r} must be a DNS-1035 label of at most "
            f"{names.DNS_LABEL_MAX} characters (it names the experiment's Service); rename it"
        )
        return problems
    for task_type, replica in spec.replicas.items():
        longest = names.pod_name(name, task_type, replica.replicas - 1)
        if len(longest) > names.DNS_LABEL_MAX:
            budget = names.DNS_LABEL_MAX - (len(longest) - len(name))
            problems.append(
                f"metadata.name: pod hostname {longest!r} has {len(longest)} characters, over "
                f"the DNS label limit of {names.DNS_LABEL_MAX}; shorten the experiment name "
                f"to at most {max(budget, 0)} characters"
            )
    return problems


def too_deep(raw: Any, limit: int = MAX_SPEC_DEPTH) -> str | None:
    """The path of the first value nested deeper than ``limit`` below ``spec``, or None.

    Iterative: a recursive walk is exactly what a deeply nested object would break.
    """
    stack: list[tuple[Any, str, int]] = [(raw, "spec", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > limit:
            return path
        if isinstance(value, Mapping):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


#: ``SchedulingPolicy.scheduler`` values; the schema keeps a string so a typo gets a fix.
SCHEDULERS: tuple[Scheduler, ...] = ("volcano", "scheduler-plugins")
#: Kubernetes' DNS-1123 subdomain (a PriorityClass name).
_DNS_SUBDOMAIN_MAX = 253


def scheduling_problems(spec: ExperimentSpec, queue_label: str | None = None) -> list[str]:
    """Problems of ``spec.schedulingPolicy``, ``spec.runPolicy.failurePolicy`` and the queue.

    ``queue_label`` is the Experiment's own ``kueue.x-k8s.io/queue-name`` label, which
    names the queue when the spec does not.
    """
    problems: list[str] = []
    policy = spec.scheduling_policy
    where = "spec.schedulingPolicy"
    if policy.scheduler is not None and policy.scheduler not in SCHEDULERS:
        problems.append(
            f"{where}.scheduler: unknown scheduler {policy.scheduler!r}; use one of "
            f"{list(SCHEDULERS)} or remove it (the default scheduler, no gang)"
        )
    total = sum(r.replicas for r in spec.replicas.values())
    if policy.min_available is not None and policy.min_available > total:
        problems.append(
            f"{where}.minAvailable: {policy.min_available} is above the {total} replica(s) "
            f"of the experiment; use at most {total} or remove it (default: every replica)"
        )
    if policy.min_available is not None and policy.scheduler is None:
        problems.append(
            f"{where}.minAvailable: only a gang scheduler uses it; set "
            f"{where}.scheduler (volcano or scheduler-plugins) or remove it"
        )
    if policy.queue is not None and not names.DNS_LABEL.match(policy.queue):
        problems.append(
            f"{where}.queue: {policy.queue!r} is not a DNS label; use lowercase letters, "
            "digits and '-' (the name of a Kueue LocalQueue or a Volcano queue)"
        )
    if queue_label is not None and (
        len(queue_label) > names.DNS_LABEL_MAX or not names.DNS_LABEL.match(queue_label)
    ):
        problems.append(
            f"metadata.labels.kueue.x-k8s.io/queue-name: {queue_label!r} is not a DNS label; "
            "name a Kueue LocalQueue with lowercase letters, digits and '-'"
        )
    if (
        queue_label is not None
        and policy.queue is not None
        and queue_label != policy.queue
        and policy.scheduler != "volcano"
    ):
        problems.append(
            f"{where}.queue: {policy.queue!r} differs from the Experiment's label "
            f"kueue.x-k8s.io/queue-name {queue_label!r}; keep one of them"
        )
    if policy.priority_class is not None and (
        len(policy.priority_class) > _DNS_SUBDOMAIN_MAX
        or not all(names.DNS_LABEL.match(part) for part in policy.priority_class.split("."))
    ):
        problems.append(
            f"{where}.priorityClass: {policy.priority_class!r} is not a valid PriorityClass "
            "name; use lowercase letters, digits, '-' and '.'"
        )
    failure = spec.run_policy.failure_policy
    fwhere = "spec.runPolicy.failurePolicy"
    if failure.restart_experiment and failure.max_restarts is None:
        problems.append(
            f"{fwhere}.maxRestarts: restartExperiment needs a bound; set maxRestarts "
            "(for example 3)"
        )
    if not failure.restart_experiment and (
        failure.max_restarts is not None
        or failure.retriable_exit_codes
        or failure.retriable_signals
    ):
        problems.append(
            f"{fwhere}.restartExperiment: maxRestarts and the retriable codes apply only to "
            "whole-experiment restarts; set restartExperiment: true or remove them"
        )
    if failure.restart_experiment:
        for task_type, replica in sorted(spec.replicas.items()):
            if replica.restart_policy != "Never":
                problems.append(
                    f"spec.replicas.{task_type}.restartPolicy: {replica.restart_policy} "
                    "recreates single pods, which restartExperiment replaces; set Never"
                )
    return problems


def validate(
    raw: Any,
    name: str,
    settings: Settings,
    namespace: str = "default",
    queue_label: str | None = None,
) -> ExperimentSpec:
    """Parse and check an Experiment's ``spec`` (a JSON-like object) named ``name``.

    ``spec.project`` defaults to ``namespace``; ``queue_label`` is the Experiment's
    ``kueue.x-k8s.io/queue-name`` label, if any. Raises ``InvalidSpec`` for any problem,
    and nothing else.
    """
    if not isinstance(raw, Mapping):
        raise InvalidSpec([f"spec: must be an object, got {type(raw).__name__}"])
    deep = too_deep(raw)
    if deep is not None:
        where = ".".join(deep.split(".")[:2]).split("[")[0]
        raise InvalidSpec(
            [
                f"{where}: nested more than {MAX_SPEC_DEPTH} levels deep (at {deep[:120]}...); "
                "flatten it (declarations are hyperparameters, not a data store)"
            ]
        )
    fields = dict(raw)
    if fields.get("project") is None:
        fields["project"] = namespace
    try:
        spec = ExperimentSpec.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise _from_pydantic(exc) from None
    problems: list[str] = []
    unknown = sorted(set(spec.replicas) - set(contract.TASK_TYPES))
    for task_type in unknown:
        problems.append(
            f"spec.replicas.{task_type}: unknown replica type; use one of "
            f"{list(contract.TASK_TYPES)}"
        )
    if contract.MASTER in spec.replicas and contract.CHIEF in spec.replicas:
        problems.append("spec.replicas: master and chief are the same role; keep only one")
    for leader in (contract.MASTER, contract.CHIEF):
        replica = spec.replicas.get(leader)
        if replica is not None and replica.replicas > 1:
            problems.append(
                f"spec.replicas.{leader}.replicas: there is one {leader}; set 1 and put the "
                f"other {replica.replicas - 1} replica(s) under worker"
            )
    if not any(t in spec.replicas for t in (contract.MASTER, contract.CHIEF, contract.WORKER)):
        problems.append("spec.replicas: add a master, chief or worker (it decides success)")
    for task_type, replica in sorted(spec.replicas.items()):
        problems.extend(_template_problems(task_type, replica.template))
    for i, store in enumerate(spec.data):
        if store not in settings.data_stores:
            known = sorted(settings.data_stores) or "none are configured"
            problems.append(
                f"spec.data[{i}]: unknown data store {store!r}; use one the operator "
                f"knows ({known})"
            )
    if settings.addressing == "loopback":
        for task_type, replica in sorted(spec.replicas.items()):
            if replica.replicas > LOOPBACK_MAX_REPLICAS:
                problems.append(
                    f"spec.replicas.{task_type}.replicas: loopback addressing (one machine) "
                    f"allows at most {LOOPBACK_MAX_REPLICAS} replicas per type; use fewer"
                )
    for kind, refs in (
        ("experiments", spec.outputs_refs.experiments),
        ("jobs", spec.outputs_refs.jobs),
    ):
        if len(set(refs)) != len(refs):
            problems.append(f"spec.outputsRefs.{kind}: a reference is listed twice; list each once")
    if len(set(spec.data)) != len(spec.data):
        problems.append("spec.data: a data store is listed twice; list each once")
    if not unknown:
        problems.extend(_name_problems(name, spec))
    problems.extend(scheduling_problems(spec, queue_label))
    if problems:
        raise InvalidSpec(problems)
    return spec
