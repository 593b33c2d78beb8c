"""The Experiment resource's spec and status: the single source of the CRD's schema.

The CRD under ``crds/`` is generated from these models (``make generate``) and the
operator parses every Experiment through them, so the schema the API server enforces and
the one the operator assumes cannot drift. Field descriptions are what
``kubectl explain experiment.spec...`` shows, so they are written for users.

Models are strict (no "3" -> 3 coercion) because the API server's structural schema is
strict too: a spec the emulator accepts must be one a real cluster accepts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "incluster.dev"
VERSION = "v1alpha1"
KIND = "Experiment"
PLURAL = "experiments"
SINGULAR = "experiment"
SHORT_NAMES = ("xp",)
CATEGORIES = ("incluster",)
API_VERSION = f"{GROUP}/{VERSION}"

Framework = Literal["none", "tensorflow", "pytorch", "jax"]
RestartPolicy = Literal["Never", "OnFailure", "ExitCode"]
CleanPodPolicy = Literal["None", "Running", "All"]
SuccessPolicy = Literal["default", "allWorkers"]
Phase = Literal["Pending", "Queued", "Running", "Restarting", "Suspended", "Succeeded", "Failed"]
#: Gang schedulers the operator creates a PodGroup for (docs/scheduling.md).
Scheduler = Literal["volcano", "scheduler-plugins"]

#: Upper bound of runPolicy.failurePolicy.maxRestarts: a bound, not a loop.
MAX_RESTARTS = 100

#: Per replica type; the cluster definition of 10,000 addresses still fits a ConfigMap.
MAX_REPLICAS = 10_000

#: Free-form objects (pod templates, hyperparameters) keep unknown fields in the CRD.
PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}

_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_REF = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[a-z0-9]([-a-z0-9]*[a-z0-9])?){0,2}$"

#: 'name', 'project/name' or 'project/group/name': DNS labels only, so never a path escape.
OutputsRef = Annotated[str, StringConstraints(pattern=_REF, max_length=191)]


def _no_default(schema: dict[str, Any]) -> None:
    """A default filled in by the operator (not by the API server) is not in the schema."""
    schema.pop("default", None)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        strict=True,
        extra="forbid",
        frozen=True,
    )


class _Observed(_Model):
    """Status is read back from the cluster, where other writers (kopf) add fields."""

    model_config = ConfigDict(extra="ignore")


class ReplicaSpec(_Model):
    """One replica type (master, chief, worker, ps or evaluator) of the experiment."""

    replicas: int = Field(
        default=1,
        ge=1,
        le=MAX_REPLICAS,
        description=(
            f"How many pods of this type to run (1 to {MAX_REPLICAS}). master and chief allow 1."
        ),
    )
    port: int = Field(
        default=2222,
        ge=1,
        le=65535,
        description="The port this type listens on; part of every replica's cluster address.",
    )
    restart_policy: RestartPolicy = Field(
        default="Never",
        description=(
            "Never: a failed pod fails the experiment. OnFailure: the kubelet restarts the "
            "container; restarts count against runPolicy.backoffLimit. ExitCode: the operator "
            "recreates a pod that exited with a retryable code (>= 128, e.g. killed or "
            "preempted), counted against backoffLimit; other codes fail the experiment."
        ),
    )
    template: dict[str, Any] = Field(
        description=(
            "A PodTemplateSpec (metadata and spec with containers). The operator adds the "
            "context env and mounts to every container, init containers included."
        ),
        json_schema_extra={"type": "object", **PRESERVE},
    )


class OutputsRefs(_Model):
    """Outputs of earlier runs to mount read-only (same namespace)."""

    experiments: list[OutputsRef] = Field(
        default_factory=list,
        description=(
            "Experiments whose outputs to mount read-only: 'name' (same project and group), "
            "'project/name' or 'project/group/name'."
        ),
    )
    jobs: list[OutputsRef] = Field(
        default_factory=list,
        description="Jobs whose outputs to mount read-only, named like experiments.",
    )


class FailurePolicy(_Model):
    """Whole-experiment restarts: one retriable replica failure restarts every pod.

    Why: a distributed job (DDP, collective all-reduce) cannot continue with one dead
    rank; recreating only that pod leaves the others hanging until their deadline.
    """

    restart_experiment: bool = Field(
        default=False,
        description=(
            "true: on a retriable replica failure every pod is deleted and recreated as a "
            "new attempt (status.attempt, env INCLUSTER_ATTEMPT); a non-retriable failure "
            "fails the experiment at once. Requires maxRestarts."
        ),
    )
    max_restarts: int | None = Field(
        default=None,
        ge=0,
        le=MAX_RESTARTS,
        description=(
            f"How many whole-experiment restarts are allowed (0 to {MAX_RESTARTS}); "
            "required with restartExperiment."
        ),
    )
    retriable_exit_codes: list[Annotated[int, Field(ge=1, le=255)]] = Field(
        default_factory=list,
        description=(
            "Exit codes (1-255) that restart the experiment. With neither this nor "
            "retriableSignals: codes >= 128 (killed by a signal: OOM, preemption) are "
            "retriable, lower codes are not."
        ),
    )
    retriable_signals: list[Annotated[int, Field(ge=1, le=127)]] = Field(
        default_factory=list,
        description=(
            "Signal numbers (9 = SIGKILL, 15 = SIGTERM) whose exit code 128 + signal "
            "restarts the experiment."
        ),
    )


class SchedulingPolicy(_Model):
    """How the experiment shares the cluster: a queue, gang scheduling, a priority."""

    queue: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description=(
            "Kueue LocalQueue name (label kueue.x-k8s.io/queue-name on every pod, admitted "
            "as one plain pod group); with scheduler volcano, the Volcano queue of the "
            "PodGroup instead. A DNS label."
        ),
    )
    min_available: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Pods that must be schedulable together (the PodGroup's minMember); default: "
            "every replica. At most the total replica count."
        ),
    )
    priority_class: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="PriorityClass of every pod (and of the PodGroup).",
    )
    scheduler: str | None = Field(
        default=None,
        description=(
            "Gang scheduler: volcano or scheduler-plugins (coscheduling). The operator "
            "creates the matching PodGroup, owned by the Experiment, and sets each pod's "
            "schedulerName and group label. Unset: the default scheduler, no PodGroup."
        ),
    )


class RunPolicy(_Model):
    """How the experiment is retried, bounded in time and cleaned up."""

    failure_policy: FailurePolicy = Field(
        default_factory=FailurePolicy,
        description="Whole-experiment restarts on a retriable failure, bounded by maxRestarts.",
    )

    backoff_limit: int = Field(
        default=6,
        ge=0,
        description="Retries (container restarts and recreated pods) before the experiment fails.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Seconds since the start after which a running experiment is failed.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Seconds after completion after which the experiment itself is deleted.",
    )
    clean_pod_policy: CleanPodPolicy = Field(
        default="Running",
        description=(
            "Which pods to delete when the experiment finishes: None, Running (pods still "
            "running, e.g. parameter servers) or All."
        ),
    )
    success_policy: SuccessPolicy | None = Field(
        default=None,
        description=(
            "default: the master/chief decides when present, else worker 0. allWorkers: "
            "every worker must succeed. Unset: the operator's setting."
        ),
    )


class ExperimentSpec(_Model):
    """The desired experiment: its replicas, context and run policy."""

    #: Not required: ``validation.validate`` fills it with the namespace, so a manifest
    #: ported from a TFJob or PyTorchJob needs no new field. (The empty default is never the
    #: value of a validated spec; the schema shows no default.)
    project: str = Field(
        default="",
        json_schema_extra=_no_default,
        min_length=1,
        max_length=63,
        pattern=_NAME,
        description=(
            "Project name (a DNS label); part of the outputs path. Defaults to the namespace."
        ),
    )
    group: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=_NAME,
        description="Optional experiment group (a DNS label); part of the outputs path.",
    )
    description: str | None = Field(default=None, description="Free text for humans.")
    tags: list[str] = Field(default_factory=list, description="Free-form tags.")
    declarations: dict[str, Any] = Field(
        default_factory=dict,
        description="Hyperparameters, given to every replica (get_declarations()).",
        json_schema_extra={"type": "object", **PRESERVE},
    )
    log_level: str | None = Field(
        default=None, description="Log level given to every replica (get_log_level())."
    )
    framework: Framework = Field(
        default="none",
        description=(
            "Which framework env to set: tensorflow (TF_CONFIG), pytorch (MASTER_ADDR, "
            "RANK, ... and torchrun's PET_*), jax (JAX_COORDINATOR_ADDRESS, ...) or none."
        ),
    )
    replicas: dict[str, ReplicaSpec] = Field(
        min_length=1,
        description="Replica types to run, keyed by master, chief, worker, ps or evaluator.",
    )
    data: list[str] = Field(
        default_factory=list,
        description="Names of data stores (configured in the operator) to mount read-only.",
    )
    outputs_refs: OutputsRefs = Field(
        default_factory=OutputsRefs,
        description="Outputs of other experiments and jobs to mount read-only.",
    )
    run_policy: RunPolicy = Field(
        default_factory=RunPolicy,
        description="Retries, deadline, cleanup and success policy.",
    )
    primary_metric: str | None = Field(
        default=None,
        description="Name of the metric to show in status.tracking.primaryMetric.",
    )
    suspend: bool = Field(
        default=False,
        description=(
            "true: no pods run (running ones are deleted, the status is kept, phase "
            "Suspended, the activeDeadlineSeconds clock paused); false again: the pods come "
            "back with the same context."
        ),
    )
    scheduling_policy: SchedulingPolicy = Field(
        default_factory=SchedulingPolicy,
        description="Queue (Kueue), gang scheduling (PodGroup) and priority.",
    )
    polyaxon_env: bool | None = Field(
        default=None,
        description=(
            "true: every container also gets the seed's POLYAXON_* env vars (POLYAXON_CLUSTER, "
            "POLYAXON_TASK_INFO, ...) with the same values as the INCLUSTER_* ones, for "
            "scripts that read them directly. Unset: the operator's setting (default false)."
        ),
    )


class Condition(_Observed):
    """One observed fact about the experiment, in the Kubernetes conditions style."""

    type: str = Field(
        description=(
            "Created, Running, Restarting, Suspended, Queued, Succeeded, Failed, InvalidSpec."
        )
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase reason, for machines.")
    message: str = Field(description="What happened and, for failures, how to fix it.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


class ReplicaStatus(_Observed):
    """Pod counts of one replica type."""

    active: int = Field(default=0, description="Pods pending or running.")
    succeeded: int = Field(default=0, description="Pods that exited 0.")
    failed: int = Field(default=0, description="Pods that failed.")


class ExperimentStatus(_Observed):
    """What the operator observed; written only by the operator (and tracking by replicas)."""

    phase: Phase | None = Field(
        default=None,
        description="Pending, Queued, Running, Restarting, Suspended, Succeeded, Failed.",
    )
    conditions: list[Condition] = Field(default_factory=list, description="Observed facts.")
    replica_statuses: dict[str, ReplicaStatus] = Field(
        default_factory=dict, description="Pod counts per replica type."
    )
    ready: str | None = Field(default=None, description="Running pods / total pods, e.g. '3/4'.")
    start_time: str | None = Field(
        default=None,
        description="When the operator first created pods (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    completion_time: str | None = Field(
        default=None,
        description="When the experiment succeeded or failed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    outputs_path: str | None = Field(
        default=None,
        description=(
            "Where this run's outputs are written: "
            "<root>/<namespace>/<project>/[<group>/]<name>/<runId>."
        ),
    )
    project: str | None = Field(
        default=None,
        description="The run's project: spec.project, or the namespace when it is unset.",
    )
    run_id: str | None = Field(
        default=None,
        description=(
            "This run's id: the Experiment's uid, experiment_uuid in the pods' experiment "
            "info and the last part of outputsPath. A re-created Experiment is a new run."
        ),
    )
    outputs_refs_runs: dict[str, Annotated[str, Field(description="A run id.")]] = Field(
        default_factory=dict,
        description=(
            "Each spec.outputsRefs.experiments entry -> the run id it resolved to (the "
            "referenced Experiment's runId when this run's pods were first created)."
        ),
    )
    restarts: int = Field(
        default=0, description="Container restarts seen on the current pods (OnFailure)."
    )
    failures: int = Field(
        default=0, description="Failed pods counted against backoffLimit (recreated or fatal)."
    )
    retried_pods: list[str] = Field(
        default_factory=list,
        description="Uids of failed pods already counted against backoffLimit and being replaced.",
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation this status describes."
    )
    attempt: int = Field(
        default=1,
        description="Which attempt of the whole experiment runs (1, +1 per restart).",
    )
    experiment_restarts: int = Field(
        default=0,
        description="Whole-experiment restarts counted against failurePolicy.maxRestarts.",
    )
    paused_since: str | None = Field(
        default=None,
        description="When the current suspension or queueing began (the deadline clock stops).",
        json_schema_extra={"format": "date-time"},
    )
    paused_seconds: int = Field(
        default=0,
        description="Seconds since startTime spent suspended or queued (the deadline skips them).",
    )
    tracking: dict[str, Any] | None = Field(
        default=None,
        description="Tracking summary (latest metrics, params, tags), patched by one replica.",
        json_schema_extra={"type": "object", **PRESERVE},
    )
