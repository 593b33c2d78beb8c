"""The Experiment API: pydantic models (the CRD's single source), names and validation."""

from incluster_operator.api.models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Condition,
    ExperimentSpec,
    ExperimentStatus,
    ReplicaSpec,
    ReplicaStatus,
    RunPolicy,
)
from incluster_operator.api.validation import InvalidSpec, validate

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Condition",
    "ExperimentSpec",
    "ExperimentStatus",
    "InvalidSpec",
    "ReplicaSpec",
    "ReplicaStatus",
    "RunPolicy",
    "validate",
]
