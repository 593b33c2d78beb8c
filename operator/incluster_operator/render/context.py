"""The experiment-wide context: addresses, paths and the context document. Pure.

Computed once per experiment (``plan()``), then shared by every pod, so rendering R pods
never re-derives the O(R) cluster definition per pod.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from incluster import contract, topology

from incluster_operator.api import names
from incluster_operator.api.models import ExperimentSpec
from incluster_operator.settings import Settings

#: Kubernetes' limit on a ConfigMap's data.
CONFIGMAP_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ExperimentMeta:
    """The parts of the Experiment's metadata that child objects depend on."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ExperimentMeta:
        """From the Experiment's ``metadata`` as the API (or kopf's ``meta``) gives it."""
        return cls(
            name=str(metadata["name"]),
            namespace=str(metadata["namespace"]),
            uid=str(metadata["uid"]),
        )

    @property
    def key(self) -> str:
        """Identifies the experiment on one machine (loopback addressing)."""
        return f"{self.namespace}/{self.name}"


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON: identical input gives identical bytes (idempotent writes)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def replica_host(meta: ExperimentMeta, settings: Settings, task_type: str, index: int) -> str:
    """How peers reach one replica: its DNS name, or a loopback address on one machine."""
    if settings.addressing == "loopback":
        return topology.loopback_host(meta.key, task_type, index)
    host = names.pod_name(meta.name, task_type, index)
    service = names.service_name(meta.name)
    return f"{host}.{service}.{meta.namespace}.svc.{settings.cluster_domain}"


def cluster_def(
    spec: ExperimentSpec, meta: ExperimentMeta, settings: Settings
) -> dict[str, list[str]]:
    """``{"master": ["host:port"], "worker": [...], ...}`` in contract.TASK_TYPES order.

    The evaluator is listed only when the operator's setting says so (TensorFlow
    versions disagree on whether it belongs to the cluster).
    """
    out: dict[str, list[str]] = {}
    for task_type in contract.TASK_TYPES:
        replica = spec.replicas.get(task_type)
        if replica is None:
            continue
        if task_type == contract.EVALUATOR and not settings.evaluator_in_cluster:
            continue
        out[task_type] = [
            f"{replica_host(meta, settings, task_type, i)}:{replica.port}"
            for i in range(replica.replicas)
        ]
    return out


def _group_path(spec: ExperimentSpec) -> list[str]:
    return [spec.project] + ([spec.group] if spec.group else [])


def run_id(meta: ExperimentMeta) -> str:
    """This run's id: the Experiment's uid (``experiment_uuid`` in the experiment info).

    A deleted and re-created Experiment of the same name is a new object with a new uid,
    hence a new run with its own directory; a pod recreated within a run keeps it.
    """
    return meta.uid


def experiment_subpath(spec: ExperimentSpec, meta: ExperimentMeta) -> str:
    """The experiment's directory inside the outputs store: one run directory per run."""
    return "/".join([meta.namespace, *_group_path(spec), meta.name])


def outputs_subpath(spec: ExperimentSpec, meta: ExperimentMeta) -> str:
    """This run's directory inside the outputs store (every part a DNS label, then the id).

    Why a run level: two runs of one experiment name (a re-created Experiment, a second
    ``incluster run``) must never append to each other's event files.
    """
    return f"{experiment_subpath(spec, meta)}/{run_id(meta)}"


def outputs_path(spec: ExperimentSpec, meta: ExperimentMeta, settings: Settings) -> str:
    """``<root>/<namespace>/<project>/[<group>/]<experiment>/<run-id>``, as the pod sees it."""
    return f"{settings.outputs_root.rstrip('/')}/{outputs_subpath(spec, meta)}"


def ref_experiment_subpath(spec: ExperimentSpec, meta: ExperimentMeta, ref: str) -> str:
    """A referenced experiment's directory: 'name' stays in this project and group."""
    parts = ref.split("/")
    if len(parts) == 1:
        parts = [*_group_path(spec), *parts]
    return "/".join([meta.namespace, *parts])


def ref_subpath(
    spec: ExperimentSpec, meta: ExperimentMeta, ref: str, run: str | None = None
) -> str:
    """A referenced run's directory in the store.

    Experiment refs resolve to one run of the referenced experiment (``run``, from its
    status); job refs (no run level: not our objects) mount the named directory.
    """
    base = ref_experiment_subpath(spec, meta, ref)
    return f"{base}/{run}" if run else base


def outputs_url(spec: ExperimentSpec, meta: ExperimentMeta, settings: Settings) -> str | None:
    """The object-store URL standing for ``outputs_path`` (None without an outputs URL)."""
    if settings.outputs_url is None:
        return None
    return f"{settings.outputs_url}/{outputs_subpath(spec, meta)}"


def ref_mount_path(settings: Settings, kind: str, ref: str) -> str:
    """Where a reference is mounted: flat (``a/b`` -> ``a.b``) so mounts never nest."""
    return f"{settings.refs_root.rstrip('/')}/{kind}/{ref.replace('/', '.')}"


def refs_paths(
    spec: ExperimentSpec,
    settings: Settings,
    meta: ExperimentMeta,
    ref_runs: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """``{"jobs": [...], "experiments": [...]}`` in the order requested: mount paths, or
    object-store URLs when the outputs live in an object store (nothing is mounted then).

    An experiment ref's URL names the run it resolved to (``ref_runs``), as its mount does.
    """

    def where(kind: str, ref: str) -> str:
        if settings.outputs_url is not None:
            run = (ref_runs or {}).get(ref) if kind == "experiments" else None
            return f"{settings.outputs_url}/{ref_subpath(spec, meta, ref, run)}"
        return ref_mount_path(settings, kind, ref)

    return {
        "jobs": [where("jobs", r) for r in spec.outputs_refs.jobs],
        "experiments": [where("experiments", r) for r in spec.outputs_refs.experiments],
    }


def data_paths(spec: ExperimentSpec, settings: Settings) -> dict[str, str]:
    """Data stores by name: a mount path, or the store's URL (``{"url": ...}`` stores)."""
    paths = {}
    for store in spec.data:
        source = settings.data_stores.get(store)
        url = source.url if source is not None else None
        paths[store] = url or f"{settings.data_root.rstrip('/')}/{store}"
    return paths


def _stable_uuid(*parts: str) -> str:
    """Projects and groups are not objects here; a name-derived uuid keeps them stable."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "incluster.dev/" + "/".join(parts)))


def experiment_info(spec: ExperimentSpec, meta: ExperimentMeta) -> dict[str, Any]:
    """The seed's experiment info: names and uuids of project, group and experiment."""
    return {
        "namespace": meta.namespace,
        "project_name": spec.project,
        "project_uuid": _stable_uuid(meta.namespace, spec.project),
        "experiment_group_name": spec.group,
        "experiment_group_uuid": (
            _stable_uuid(meta.namespace, spec.project, spec.group) if spec.group else None
        ),
        "experiment_name": meta.name,
        # The run id: a new Experiment object (or `incluster run`) is a new run.
        "experiment_uuid": run_id(meta),
    }


def spec_document(spec: ExperimentSpec) -> dict[str, Any]:
    """The validated spec as JSON (``spec.json`` in the context ConfigMap): the run's spec.

    Defaults are filled in, so two manifests that mean the same give the same document.
    ``suspend`` is left out: it is a switch a started run follows (docs/scheduling.md),
    not part of what the run runs, so flipping it is no ignored edit.
    """
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"suspend"})


def context_document(
    spec: ExperimentSpec,
    meta: ExperimentMeta,
    settings: Settings,
    ref_runs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The content of ``context.json`` (keys from the contract)."""
    document = {
        contract.KEY_VERSION: contract.CONTEXT_VERSION,
        contract.KEY_EXPERIMENT_INFO: experiment_info(spec, meta),
        contract.KEY_DECLARATIONS: spec.declarations,
        contract.KEY_LOG_LEVEL: spec.log_level,
        contract.KEY_OUTPUTS_PATH: outputs_path(spec, meta, settings),
        contract.KEY_OUTPUTS_REFS_PATHS: refs_paths(spec, settings, meta, ref_runs),
        contract.KEY_DATA_PATHS: data_paths(spec, settings),
        contract.KEY_FRAMEWORK: spec.framework,
        contract.KEY_EVALUATOR_IN_CLUSTER: settings.evaluator_in_cluster,
        contract.KEY_PRIMARY_METRIC: spec.primary_metric,
    }
    if settings.report_url:
        document[contract.KEY_REPORT_URL] = settings.report_url
    return document


@dataclass(frozen=True)
class Plan:
    """Everything experiment-wide, computed once and shared by all pods."""

    spec: ExperimentSpec
    meta: ExperimentMeta
    settings: Settings
    cluster: dict[str, list[str]]
    cluster_json: str
    context_json: str
    #: The cluster definition (and TF_CONFIG) go into env: small enough to inline.
    inline_cluster: bool
    #: Env every container of every pod gets, in order (name, value).
    common_env: tuple[tuple[str, str], ...]
    #: Experiment ref -> the run id it resolved to (``status.outputsRefsRuns``).
    ref_runs: Mapping[str, str] = field(default_factory=dict)
    #: The whole-experiment attempt the pods are rendered for (status.attempt).
    attempt: int = 1
    #: The Kueue LocalQueue (spec.schedulingPolicy.queue or the Experiment's label).
    kueue_queue: str | None = None


def _common_env(
    spec: ExperimentSpec,
    meta: ExperimentMeta,
    settings: Settings,
    inline_cluster: bool,
    ref_runs: Mapping[str, str] | None = None,
    attempt: int = 1,
) -> tuple[tuple[str, str], ...]:
    """Experiment-wide env. Values that grow with user input are inlined only when small.

    The SDK reads env first and falls back to ``context.json``, so leaving a large value
    out of env loses nothing and keeps every pod far below ``MAX_ARG_STRLEN``.
    """
    limit = settings.inline_env_max_bytes
    env: list[tuple[str, str]] = [
        (contract.ENV_CONTEXT_DIR, settings.context_dir),
        (
            contract.ENV_EXPERIMENT_INFO,
            dumps({**experiment_info(spec, meta), contract.INFO_ATTEMPT: attempt}),
        ),
        (contract.ENV_ATTEMPT, str(attempt)),
        (contract.ENV_OUTPUTS_PATH, outputs_path(spec, meta, settings)),
        (contract.ENV_SUMMARY_SYNC_SECONDS, f"{settings.summary_sync_seconds:g}"),
    ]
    url = outputs_url(spec, meta, settings)
    if url is not None:  # a URL, never a credential: pods bring their own
        env.append((contract.ENV_OUTPUTS_URL, url))
        env.append((contract.ENV_UPLOAD_SECONDS, f"{settings.upload_seconds:g}"))
    optional = [
        (contract.ENV_LOG_LEVEL, spec.log_level or ""),
        (contract.ENV_DECLARATIONS, dumps(spec.declarations) if spec.declarations else ""),
        (contract.ENV_OUTPUTS_REFS_PATHS, dumps(refs_paths(spec, settings, meta, ref_runs))),
        (contract.ENV_DATA_PATHS, dumps(data_paths(spec, settings))),
    ]
    env.extend((k, v) for k, v in optional if v and len(v.encode()) <= limit)
    if not inline_cluster:
        env.append((contract.ENV_CLUSTER_IN_FILE, "1"))
    return tuple(env)


def plan(
    spec: ExperimentSpec,
    meta: ExperimentMeta,
    settings: Settings,
    ref_runs: Mapping[str, str] | None = None,
    attempt: int = 1,
    kueue_queue: str | None = None,
) -> Plan:
    """Compute the experiment-wide values once; ``ref_runs``: experiment ref -> run id.

    ``attempt`` is the whole-experiment attempt the pods are rendered for.
    """
    cluster = cluster_def(spec, meta, settings)
    # Not key-sorted: the cluster's order (master, chief, worker, ps, evaluator) is meaningful.
    cluster_json = json.dumps(cluster, separators=(",", ":"))
    inline = len(cluster_json.encode()) <= settings.inline_env_max_bytes
    return Plan(
        spec=spec,
        meta=meta,
        settings=settings,
        cluster=cluster,
        cluster_json=cluster_json,
        context_json=dumps(context_document(spec, meta, settings, ref_runs)),
        inline_cluster=inline,
        common_env=_common_env(spec, meta, settings, inline, ref_runs, attempt),
        ref_runs=dict(ref_runs or {}),
        attempt=attempt,
        kueue_queue=kueue_queue,
    )


def task_env(p: Plan, task_type: str, index: int) -> list[tuple[str, str]]:
    """One replica's env: identity, then the cluster (when inlined), then framework env."""
    env = [(contract.ENV_TASK_INFO, dumps({"type": task_type, "index": index}))]
    env.extend(p.common_env)
    if p.inline_cluster:
        env.append((contract.ENV_CLUSTER, p.cluster_json))
        if p.spec.framework in ("none", "tensorflow"):
            env.append(
                (contract.ENV_TF_CONFIG, topology.tf_config_json(p.cluster, task_type, index))
            )
    env.extend(
        sorted(topology.framework_env(p.spec.framework, p.cluster, task_type, index).items())
    )
    if seed_env_enabled(p):
        env.extend((contract.SEED_ENV[k], v) for k, v in list(env) if k in contract.SEED_ENV)
    return env


def seed_env_enabled(p: Plan) -> bool:
    """The Experiment's ``polyaxonEnv`` if set, else the operator's setting."""
    wanted = p.spec.polyaxon_env
    return p.settings.polyaxon_env if wanted is None else wanted
