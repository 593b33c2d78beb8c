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
from incluster_operator.api.models import ExperimentSpec
from incluster_operator.api.validation import InvalidSpec, validate
from incluster_operator.render import (
    ExperimentMeta,
    plan,
    render_config_map,
    render_service,
)
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


def desired(body: Mapping[str, Any], settings: Settings) -> Desired:
    """Validate and render everything; raises ``InvalidSpec`` and nothing else."""
    meta = meta_of(body)
    spec = validate(body.get("spec"), meta.name, settings)
    p = plan(spec, meta, settings)
    pods = {key: render_pod(p, *key) for key in replica_keys(p)}
    return Desired(
        spec=spec,
        meta=meta,
        children=(render_service(p), render_config_map(p)),
        pods=pods,
    )


def admit(body: Mapping[str, Any], settings: Settings, now: datetime) -> Desired | status.Decision:
    """The experiment's children, or the ``Failed``/``InvalidSpec`` decision that replaces them.

    Never raises for any spec: a malformed Experiment is an answer (a status naming the
    field and the fix), not an exception that kopf would retry forever.
    """
    try:
        return desired(body, settings)
    except RecursionError:
        # A last resort: validation bounds the depth, but no object may stop the operator.
        return _invalid(
            body,
            InvalidSpec(["spec: too deeply nested to process; flatten spec.declarations"]),
            now,
        )
    except InvalidSpec as problem:
        return _invalid(body, problem, now)


def _invalid(body: Mapping[str, Any], problem: InvalidSpec, now: datetime) -> status.Decision:
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    return status.invalid(
        problem,
        body.get("status") if isinstance(body.get("status"), Mapping) else None,
        now,
        generation if isinstance(generation, int) else None,
    )
