"""The Experiment CustomResourceDefinition, derived from the pydantic models.

Pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no
``$ref``, no ``anyOf`` for optional fields (``nullable`` instead), no titles and no
``additionalProperties: false`` beside ``properties`` (pruning already drops unknown
fields). This module performs exactly that translation, so ``crds/`` never needs editing.
"""

from __future__ import annotations

from typing import Any

import yaml

from incluster_operator.api import models

_DROPPED = frozenset({"title", "$defs"})


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Translate one JSON Schema node (recursively) into its structural form."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = dict(defs[ref.rsplit("/", 1)[-1]])
        target.update(node)  # a field's own description/default beat the model's
        node = target
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        options = [o for o in any_of if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {any_of} in a structural schema")
        merged = dict(options[0])
        merged.update(node)
        merged["nullable"] = True
        if merged.get("default", 0) is None:
            del merged["default"]
        return _structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            continue  # false: pruning does it; true: preserve-unknown-fields says it
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _structural(value, defs)
    return out


def openapi_schema() -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the Experiment resource."""
    spec = models.ExperimentSpec.model_json_schema(by_alias=True)
    status = models.ExperimentStatus.model_json_schema(by_alias=True)
    spec_schema = _structural(spec, spec.get("$defs", {}))
    status_schema = _structural(status, status.get("$defs", {}))
    # kopf keeps handler progress and results under status; keep what it writes.
    status_schema.update(models.PRESERVE)
    return {
        "type": "object",
        "description": "An ML experiment: pods of one or more replica types with their run "
        "context (cluster definition, hyperparameters, outputs and data paths) and tracking.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }


def definition() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{models.PLURAL}.{models.GROUP}"},
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": list(models.SHORT_NAMES),
                "categories": list(models.CATEGORIES),
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        # The status's: spec.project may be unset (it defaults to the namespace).
                        {"name": "Project", "type": "string", "jsonPath": ".status.project"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "description": "Running pods / total pods",
                            "jsonPath": ".status.ready",
                        },
                        {
                            "name": "Attempt",
                            "type": "integer",
                            "description": "Whole-experiment attempt (restartExperiment)",
                            "jsonPath": ".status.attempt",
                        },
                        {
                            "name": "Metric",
                            "type": "string",
                            "description": "spec.primaryMetric's latest value and step",
                            "jsonPath": ".status.tracking.primaryMetric",
                        },
                        {
                            "name": "Age",
                            "type": "date",
                            "jsonPath": ".metadata.creationTimestamp",
                        },
                        {
                            "name": "Run",
                            "type": "string",
                            "priority": 1,  # kubectl get xp -o wide
                            "description": "The run id: the uid, the last part of outputsPath",
                            "jsonPath": ".status.runId",
                        },
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD file's text (``crds/experiments.incluster.dev.yaml``)."""
    header = "# Generated by `make generate` from incluster_operator/api/models.py; do not edit.\n"
    body = yaml.safe_dump(definition(), sort_keys=False, width=100, allow_unicode=True)
    return header + body
