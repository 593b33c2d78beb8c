"""What an Experiment should own, decided without an API server.

Why its own module: this is the operator's whole input -> output function (the
Experiment as the API returns it, plus the installation's settings -> every child
object, or the ``Failed`` decision that replaces them), and keeping it free of kopf and
the ``kubernetes`` client (enforced by import-linter) lets the property-based tests run
it on any spec. The reconcile round (``reconcile``) calls ``admit`` first, then acts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from incluster_operator import status
from incluster_operator.api import names
from incluster_operator.api.models import ExperimentSpec
from incluster_operator.api.validation import InvalidSpec, validate
from incluster_operator.render import (
    ExperimentMeta,
    owner_reference,
    plan,
    render_config_map,
    render_service,
    scheduling,
)
from incluster_operator.render.context import Plan, spec_document
from incluster_operator.render.pods import render_pod, replica_keys
from incluster_operator.settings import Settings


@dataclass(frozen=True)
class Desired:
    """A valid experiment's objects: children in creation order, and its pods by replica."""

    spec: ExperimentSpec
    meta: ExperimentMeta
    children: tuple[dict[str, Any], ...]
    pods: Mapping[tuple[str, int], dict[str, Any]]
    #: Experiment ref -> the run it mounts (recorded in ``status.outputsRefsRuns``).
    ref_runs: Mapping[str, str] = field(default_factory=dict)

    def render(self, task_type: str, index: int) -> dict[str, Any]:
        """A missing pod's manifest (``k8s.apply`` creates the ones a decision lists)."""
        return self.pods[(task_type, index)]


def meta_of(body: Mapping[str, Any]) -> ExperimentMeta:
    """The metadata children depend on, from an Experiment as the API returns it."""
    metadata = body.get("metadata") or {}
    return ExperimentMeta(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=str(metadata.get("uid", "")),
    )


def _labels(body: Mapping[str, Any]) -> dict[str, str]:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _queue_label(body: Mapping[str, Any]) -> str | None:
    return _labels(body).get(scheduling.KUEUE_QUEUE_LABEL)


def attempt_of(body: Mapping[str, Any]) -> int:
    """The attempt the status says runs now: new pods are rendered for it."""
    return status.previous_status(
        body.get("status") if isinstance(body.get("status"), Mapping) else None
    ).attempt


def pod_group(p: Plan) -> tuple[dict[str, Any], ...]:
    """The gang scheduler's PodGroup (none without spec.schedulingPolicy.scheduler), owned."""
    group = scheduling.render_pod_group(p)
    if group is None:
        return ()
    group["metadata"]["labels"] = {
        **names.selector(p.meta.name, p.meta.uid),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }
    group["metadata"]["ownerReferences"] = [owner_reference(p.meta)]
    return (group,)


#: Looks up a referenced Experiment by name (same namespace): its current run id, or None
#: when it does not exist. The reconcile round passes one that reads the API.
RefResolver = Callable[[str], str | None]


def run_of(body: Mapping[str, Any] | None) -> str | None:
    """An Experiment's current run id: ``status.runId``, else its uid (the same by design)."""
    if body is None:
        return None
    recorded = (body.get("status") or {}).get("runId")
    uid = (body.get("metadata") or {}).get("uid")
    run = recorded if isinstance(recorded, str) and recorded else uid
    return run if isinstance(run, str) and run else None


def desired(
    body: Mapping[str, Any], settings: Settings, ref_runs: Mapping[str, str] | None = None
) -> Desired:
    """Validate and render everything; raises ``InvalidSpec`` and nothing else.

    ``ref_runs`` maps each experiment ref to the run it mounts (missing: the
    experiment's directory without a run level, for callers that render only).
    """
    meta = meta_of(body)
    spec = validate(body.get("spec"), meta.name, settings, meta.namespace, _queue_label(body))
    return _render(spec, meta, settings, ref_runs or {}, body)


def _render(
    spec: ExperimentSpec,
    meta: ExperimentMeta,
    settings: Settings,
    ref_runs: Mapping[str, str],
    body: Mapping[str, Any],
) -> Desired:
    """Pods for the attempt the status names, in the Kueue queue the Experiment names."""
    queue = scheduling.kueue_queue(spec, _labels(body))
    p = plan(spec, meta, settings, ref_runs, attempt_of(body), queue)
    pods = {key: render_pod(p, *key) for key in replica_keys(p)}
    return Desired(
        spec=spec,
        meta=meta,
        children=(
            render_service(p),
            render_config_map(p),
            *pod_group(p),
        ),
        pods=pods,
        ref_runs=dict(ref_runs),
    )


def _generation(body: Mapping[str, Any]) -> int | None:
    generation = (body.get("metadata") or {}).get("generation")
    return generation if isinstance(generation, int) else None


def _status(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    current = body.get("status")
    return current if isinstance(current, Mapping) else None


def resolve_refs(
    spec: ExperimentSpec, recorded: Mapping[str, str], resolve: RefResolver | None
) -> tuple[dict[str, str], list[str]]:
    """Each experiment ref's run: the one recorded in this run's status, else looked up.

    Recorded refs stay as they were, so a pod recreated mid-run mounts the same run as
    its peers even if the referenced experiment was re-created meanwhile. Returns the
    runs and the refs that do not resolve (their Experiment does not exist).
    """
    runs: dict[str, str] = {}
    missing: list[str] = []
    for ref in spec.outputs_refs.experiments:
        run = recorded.get(ref) or (resolve(ref.rsplit("/", 1)[-1]) if resolve else None)
        if run:
            runs[ref] = run
        else:
            missing.append(ref)
    return runs, missing


def admit(
    body: Mapping[str, Any],
    settings: Settings,
    now: datetime,
    resolve: RefResolver | None = None,
) -> Desired | status.Decision:
    """The experiment's children, or the decision that replaces them.

    ``Failed``/``InvalidSpec`` for a spec that cannot run; ``Pending`` with an
    ``OutputsRefsReady=False`` condition (looked at again later) while a referenced
    Experiment does not exist. Never raises for any spec: a malformed Experiment is an
    answer (a status naming the field and the fix), not an exception that kopf would
    retry forever.
    """
    meta = meta_of(body)
    try:
        spec = validate(body.get("spec"), meta.name, settings, meta.namespace, _queue_label(body))
        recorded = status.previous_status(_status(body)).outputs_refs_runs
        runs, missing = resolve_refs(spec, recorded, resolve)
        if missing:
            return status.waiting_for_refs(
                missing, meta.namespace, _status(body), now, _generation(body)
            )
        return _render(spec, meta, settings, runs, body)
    except RecursionError:
        # A last resort: validation bounds the depth, but no object may stop the operator.
        problem = InvalidSpec(["spec: too deeply nested to process; flatten spec.declarations"])
        return status.invalid(problem, _status(body), now, _generation(body))
    except InvalidSpec as problem:
        return status.invalid(problem, _status(body), now, _generation(body))


def _changed_paths(old: Any, new: Any, path: str, depth: int = 3) -> list[str]:
    """Dotted paths where two JSON documents differ (at most ``depth`` levels deep)."""
    if old == new:
        return []
    if depth == 0 or not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return [path]
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        out += _changed_paths(old.get(key), new.get(key), f"{path}.{key}", depth - 1)
    return out


def ignored_change(
    body: Mapping[str, Any], run_spec: Mapping[str, Any], settings: Settings
) -> str | None:
    """What a started run does not apply of the Experiment's current spec, and what to do.

    None when the spec means the same as the one the run started with. A running
    experiment keeps its spec: changing replicas, templates or policies under live pods
    would leave a mix of two specs, so the change is reported (a condition and an
    Event, see ``status.spec_change``) and the way to run it is named.
    """
    meta = meta_of(body)
    generation = _generation(body)
    try:
        spec = validate(body.get("spec"), meta.name, settings, meta.namespace)
    except InvalidSpec as problem:
        what = f"is not valid either ({problem})"
    else:
        new = spec_document(spec)
        if new == dict(run_spec):
            return None
        paths = _changed_paths(dict(run_spec), new, "spec")
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        what = f"changes {shown}"
    phase = (_status(body) or {}).get("phase")
    when = "after the run finished" if phase in status.FINISHED else "while the run has pods"
    return (
        f"generation {generation} {what} {when}; a run keeps the spec it started with, "
        "so nothing changed. To run the new spec, delete the Experiment and apply it "
        "again: that starts a new run (the outputs of this one are kept)"
    )
