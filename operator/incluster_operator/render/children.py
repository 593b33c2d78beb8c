"""The experiment's child objects besides pods: the headless Service and the context ConfigMap.

One Service per experiment (not one per replica) gives every pod a stable DNS name
through ``hostname``/``subdomain``; ``publishNotReadyAddresses`` lets peers resolve each
other before readiness, which distributed frameworks need to start at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from incluster import contract

from incluster_operator.api import names
from incluster_operator.api.models import ExperimentSpec
from incluster_operator.api.validation import InvalidSpec
from incluster_operator.render.context import (
    CONFIGMAP_MAX_BYTES,
    ExperimentMeta,
    Plan,
    dumps,
    plan,
    spec_document,
)
from incluster_operator.render.pods import owner_reference, render_pod, replica_keys
from incluster_operator.settings import Settings


def _metadata(name: str, meta: ExperimentMeta) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": meta.namespace,
        "labels": {
            **names.selector(meta.name, meta.uid),
            names.LABEL_MANAGED_BY: names.MANAGED_BY,
        },
        "ownerReferences": [owner_reference(meta)],
    }


def render_service(p: Plan) -> dict[str, Any]:
    """The headless Service named after the experiment, one port per distinct replica port."""
    ports = sorted({replica.port for replica in p.spec.replicas.values()})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(names.service_name(p.meta.name), p.meta),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector(p.meta.name, p.meta.uid),
            "ports": [
                {"name": f"port-{port}", "port": port, "targetPort": port, "protocol": "TCP"}
                for port in ports
            ],
        },
    }


def render_config_map(p: Plan) -> dict[str, Any]:
    """The context ConfigMap, once per run: ``context.json``, ``cluster.json``, the run's
    spec (``spec.json``: what the operator keeps running after a later edit) and the report
    API's CA bundle (``report-ca.crt``)."""
    data = {
        contract.FILE_CONTEXT: p.context_json,
        contract.FILE_CLUSTER: p.cluster_json,
        contract.FILE_RUN_SPEC: dumps(spec_document(p.spec)),
    }
    if p.settings.report_ca_pem:
        # A CA certificate is public: a ConfigMap is the right place for it.
        data[contract.FILE_REPORT_CA] = p.settings.report_ca_pem
    size = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    if size > CONFIGMAP_MAX_BYTES:
        raise InvalidSpec(
            [
                f"spec: the context ({size} bytes: declarations and {len(p.cluster)} replica "
                f"types' addresses) exceeds a ConfigMap's {CONFIGMAP_MAX_BYTES} bytes; shrink "
                "spec.declarations or the replica counts"
            ]
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(names.context_configmap_name(p.meta.name), p.meta),
        "data": data,
    }


@dataclass(frozen=True)
class Children:
    """Everything the operator creates for one experiment, in creation order."""

    service: dict[str, Any]
    config_map: dict[str, Any]
    pods: list[dict[str, Any]]


def render_all(
    spec: ExperimentSpec,
    meta: ExperimentMeta,
    settings: Settings,
    ref_runs: Mapping[str, str] | None = None,
) -> Children:
    """All child objects of a validated spec; raises InvalidSpec for template clashes."""
    p = plan(spec, meta, settings, ref_runs)
    return Children(
        service=render_service(p),
        config_map=render_config_map(p),
        pods=[render_pod(p, task_type, index) for task_type, index in replica_keys(p)],
    )
