"""Pure rendering: a validated spec + settings -> the Service, ConfigMap and pods.

No I/O, no kopf, no Kubernetes client (import-linter enforces it), and deterministic:
the same input renders byte-identical objects, so the reconcile round can create them
idempotently and compare what exists with what should.
"""

from incluster_operator.render.children import (
    Children,
    render_all,
    render_config_map,
    render_service,
)
from incluster_operator.render.context import (
    ExperimentMeta,
    Plan,
    cluster_def,
    context_document,
    outputs_path,
    plan,
)
from incluster_operator.render.pods import (
    identity_labels,
    owner_reference,
    render_pod,
    replica_keys,
)

__all__ = [
    "Children",
    "ExperimentMeta",
    "Plan",
    "cluster_def",
    "context_document",
    "identity_labels",
    "outputs_path",
    "owner_reference",
    "plan",
    "render_all",
    "render_config_map",
    "render_pod",
    "render_service",
    "replica_keys",
]
