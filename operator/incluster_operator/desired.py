"""What an Experiment should own, decided without an API server.

Why its own module: this is the operator's whole input -> output function (the
Experiment as the API returns it, plus the installation's settings -> every child
object, or the ``Failed`` decision that replaces them), and keeping it free of kopf and
the ``kubernetes`` client (enforced by import-linter) lets the property-based tests run
it on any spec. The reconcile round (``reconcile``) calls ``admit`` first, then acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from incluster_operator import status
from incluster_operator.api import names
from incluster_operator.api.models import ExperimentSpec
from incluster_operator.api.validation import InvalidSpec, validate
from incluster_operator.render import (
    ExperimentMeta,
    access,
    owner_reference,
    plan,
    render_config_map,
    render_service,
    scheduling,
)
from incluster_operator.render.context import Plan
from incluster_operator.render.pods import render_pod, replica_keys
from incluster_operator.settings import Settings


@dataclass(frozen=True)
class Desired:
    """A valid experiment's objects: children in creation order, and its pods by replica."""

    spec: ExperimentSpec
    meta: ExperimentMeta
    children: tuple[dict[str, Any], ...]
    pods: Mapping[tuple[str, int], dict[str, Any]]

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


def access_objects(spec: ExperimentSpec, meta: ExperimentMeta) -> tuple[dict[str, Any], ...]:
    """The scoped identity (ServiceAccount, Role, RoleBinding, empty token Secret), owned.

    The Role may read the experiments whose outputs this one mounts: a reference's last
    part is that experiment's name.
    """
    refs = [ref.rsplit("/", 1)[-1] for ref in spec.outputs_refs.experiments]
    labels = {**names.selector(meta.name, meta.uid), names.LABEL_MANAGED_BY: names.MANAGED_BY}
    objects = access.access_objects(meta.name, meta.namespace, refs, labels)
    for obj in objects:
        obj["metadata"]["ownerReferences"] = [owner_reference(meta)]
    return tuple(objects)


def _labels(body: Mapping[str, Any]) -> dict[str, str]:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


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


def desired(body: Mapping[str, Any], settings: Settings) -> Desired:
    """Validate and render everything; raises ``InvalidSpec`` and nothing else."""
    meta = meta_of(body)
    labels = _labels(body)
    spec = validate(body.get("spec"), meta.name, settings, labels.get(scheduling.KUEUE_QUEUE_LABEL))
    p = plan(spec, meta, settings, attempt_of(body), scheduling.kueue_queue(spec, labels))
    pods = {
        key: access.with_token_sources(render_pod(p, *key), meta.name) for key in replica_keys(p)
    }
    return Desired(
        spec=spec,
        meta=meta,
        children=(
            render_service(p),
            render_config_map(p),
            *access_objects(spec, meta),
            *pod_group(p),
        ),
        pods=pods,
    )


def admit(body: Mapping[str, Any], settings: Settings, now: datetime) -> Desired | status.Decision:
    """The experiment's children, or the ``Failed``/``InvalidSpec`` decision that replaces them.

    Never raises for any spec: a malformed Experiment is an answer (a status naming the
    field and the fix), not an exception that kopf would retry forever.
    """
    try:
        return desired(body, settings)
    except InvalidSpec as problem:
        metadata = body.get("metadata") or {}
        generation = metadata.get("generation")
        return status.invalid(
            problem,
            body.get("status") if isinstance(body.get("status"), Mapping) else None,
            now,
            generation if isinstance(generation, int) else None,
        )
