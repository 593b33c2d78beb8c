"""The context contract: every name the operator writes and the SDK reads.

This module is the single source of truth for env var names, file names and the
shape of the context document. The operator imports it to render pods; the SDK
imports it to read the context back; the docs' reference table is generated from
it (``python -m incluster.contract`` prints it). Nothing else may spell these names.

Why both env vars and files: env vars are what the seed API promises and what
frameworks (TensorFlow, torchrun, JAX) read, but env is copied into every pod and
capped by ``MAX_ARG_STRLEN``. Experiment-wide values therefore live once per
experiment in a mounted ConfigMap (``context.json``, ``cluster.json``); small ones are
also inlined in env, the cluster definition only below a size threshold.
"""

from __future__ import annotations

from typing import Final, NamedTuple

#: Version of the context document (``context.json``). The SDK refuses a newer major.
CONTEXT_VERSION: Final = 1

ENV_PREFIX: Final = "INCLUSTER_"

# --- env vars: the seed's values -------------------------------------------------------
ENV_CLUSTER: Final = "INCLUSTER_CLUSTER"
ENV_TF_CONFIG: Final = "TF_CONFIG"
ENV_TASK_INFO: Final = "INCLUSTER_TASK_INFO"
ENV_EXPERIMENT_INFO: Final = "INCLUSTER_EXPERIMENT_INFO"
ENV_DECLARATIONS: Final = "INCLUSTER_DECLARATIONS"
ENV_LOG_LEVEL: Final = "INCLUSTER_LOG_LEVEL"
ENV_OUTPUTS_PATH: Final = "INCLUSTER_RUN_OUTPUTS_PATH"
ENV_OUTPUTS_REFS_PATHS: Final = "INCLUSTER_REFS_OUTPUTS_PATHS"
ENV_DATA_PATHS: Final = "INCLUSTER_RUN_DATA_PATHS"
#: Which attempt of the whole experiment this pod belongs to ("1", then +1 per restart
#: under ``runPolicy.failurePolicy.restartExperiment``); also the experiment info's
#: ``attempt``. Per pod: the context files are experiment-wide and never carry it.
ENV_ATTEMPT: Final = "INCLUSTER_ATTEMPT"

#: The seed's own names for the values above (Polyaxon's), used when an operator injects
#: them beside ours (its ``POLYAXON_ENV`` setting or ``spec.polyaxonEnv``). The SDK reads
#: each one only when the ``INCLUSTER_`` name is absent, so a script written against the
#: seed's env vars runs unchanged. ``TF_CONFIG`` is the framework's own and has no alias.
SEED_ENV: Final = {
    ENV_CLUSTER: "POLYAXON_CLUSTER",
    ENV_TASK_INFO: "POLYAXON_TASK_INFO",
    ENV_EXPERIMENT_INFO: "POLYAXON_EXPERIMENT_INFO",
    ENV_DECLARATIONS: "POLYAXON_DECLARATIONS",
    ENV_LOG_LEVEL: "POLYAXON_LOG_LEVEL",
    ENV_OUTPUTS_PATH: "POLYAXON_RUN_OUTPUTS_PATH",
    ENV_OUTPUTS_REFS_PATHS: "POLYAXON_REFS_OUTPUTS_PATHS",
    ENV_DATA_PATHS: "POLYAXON_RUN_DATA_PATHS",
}

# --- env vars: plumbing ------------------------------------------------------------------
#: Directory holding the context files. Set by the operator in every container; when it
#: is set, the files it names must exist (a missing one is a broken context, not "local").
ENV_CONTEXT_DIR: Final = "INCLUSTER_CONTEXT_DIR"
#: Where tracking writes when there is no context (local runs). Default: ``./outputs``.
ENV_LOCAL_OUTPUTS_ROOT: Final = "INCLUSTER_LOCAL_OUTPUTS_ROOT"
#: ``1`` when the framework env (TF_CONFIG etc.) was too large to inline and was left out.
ENV_CLUSTER_IN_FILE: Final = "INCLUSTER_CLUSTER_IN_FILE"

#: Seconds between two patches of the tracking summary into the Experiment's status
#: (set by the operator from its summary sync setting; default 10).
ENV_SUMMARY_SYNC_SECONDS: Final = "INCLUSTER_SUMMARY_SYNC_SECONDS"
#: The Kubernetes API's URL for a plain-HTTP dev cluster; the dev cluster's pod runner sets
#: it. The SDK does not read it: pods hold no Kubernetes API credential from incluster
#: (docs/security.md), they report through the operator (``KEY_REPORT_URL``).
ENV_API_URL: Final = "INCLUSTER_API_URL"
#: The standard in-cluster API address that Kubernetes sets in every container.
ENV_KUBERNETES_SERVICE_HOST: Final = "KUBERNETES_SERVICE_HOST"
ENV_KUBERNETES_SERVICE_PORT: Final = "KUBERNETES_SERVICE_PORT"

#: The object-store URL that stands for the outputs path (``INCLUSTER_RUN_OUTPUTS_PATH``):
#: set when the operator's outputs store is ``s3://``, ``gs://`` or ``az://``. The pod
#: still writes locally; the SDK uploads what lies under the outputs path to the same
#: relative place under this URL (docs/tracking.md, "Object stores").
ENV_OUTPUTS_URL: Final = "INCLUSTER_OUTPUTS_URL"
#: Seconds between two uploads of new event lines to the outputs URL (default 10).
ENV_UPLOAD_SECONDS: Final = "INCLUSTER_UPLOAD_SECONDS"

# --- env vars: framework-specific (set only where the Experiment's framework asks) ----
ENV_PYTORCH: Final = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
ENV_TORCHRUN: Final = ("PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
ENV_JAX: Final = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")

# --- files in the context directory ---------------------------------------------------
DEFAULT_CONTEXT_DIR: Final = "/var/run/incluster"
#: The experiment-wide context document (JSON object, see ``ContextDocument`` keys).
FILE_CONTEXT: Final = "context.json"
#: The cluster definition, ``{"master": ["host:port"], ...}``; once per experiment.
FILE_CLUSTER: Final = "cluster.json"
#: The validated spec this run was started with (the operator reads it back after a
#: restart: a running experiment keeps its spec; later edits are reported, not applied).
FILE_RUN_SPEC: Final = "spec.json"
#: Sub-directory with the pod's projected ServiceAccount token (audience ``incluster.dev``,
#: a file only, never env); the kubelet rotates it and it dies with the pod.
DIR_TOKEN: Final = "token"  # noqa: S105 - a directory name
FILE_TOKEN: Final = "token"  # noqa: S105 - a file name
#: The CA bundle (PEM) that signed the operator's report API certificate.
FILE_REPORT_CA: Final = "report-ca.crt"

# --- the outputs directory ----------------------------------------------------------------
#: Sub-directory of the outputs path with one JSON-lines event file per process.
DIR_EVENTS: Final = "events"
#: Suffix of an event file: ``<type>-<index>.jsonl``.
EVENTS_SUFFIX: Final = ".jsonl"
#: Attempts after the first write apart: ``<type>-<index>.attempt-<n>.jsonl``.
EVENTS_ATTEMPT_INFIX: Final = ".attempt-"

# --- keys of context.json ----------------------------------------------------------------
KEY_VERSION: Final = "version"
KEY_EXPERIMENT_INFO: Final = "experimentInfo"
KEY_DECLARATIONS: Final = "declarations"
KEY_LOG_LEVEL: Final = "logLevel"
KEY_OUTPUTS_PATH: Final = "outputsPath"
KEY_OUTPUTS_REFS_PATHS: Final = "outputsRefsPaths"
KEY_DATA_PATHS: Final = "dataPaths"
KEY_FRAMEWORK: Final = "framework"
KEY_EVALUATOR_IN_CLUSTER: Final = "evaluatorInCluster"
#: Name of the metric the summary shows as ``status.tracking.primary`` (a printer column).
KEY_PRIMARY_METRIC: Final = "primaryMetric"
#: The operator's report API (``https://...``); absent where there is none (local runs).
KEY_REPORT_URL: Final = "reportUrl"

# --- the operator's report API (paths under KEY_REPORT_URL) ------------------------------
#: GET: this pod's experiment, a view of its spec and status.
REPORT_PATH_EXPERIMENT: Final = "/v1/experiment"
#: GET ``<this>/<name>``: a referenced experiment's status and outputs path.
REPORT_PATH_REFERENCES: Final = "/v1/references"
#: PUT: the tracking summary ``{"tracking": {...}}`` (the reporter replica only).
REPORT_PATH_TRACKING: Final = "/v1/tracking"

# --- the Experiment resource: its API names and the status keys the operator writes -----
API_GROUP: Final = "incluster.dev"
API_VERSION: Final = "v1alpha1"
PLURAL: Final = "experiments"
#: ``status.<this>`` holds the bounded tracking summary one replica patches.
STATUS_TRACKING: Final = "tracking"
#: ``status.tracking.<this>``: ``"<metric>=<value> @ <step>"`` for ``kubectl get xp``.
STATUS_TRACKING_PRIMARY: Final = "primaryMetric"
#: ``status.<this>`` holds an experiment's outputs path (read through ``outputsRefs``).
STATUS_OUTPUTS_PATH: Final = "outputsPath"

# --- keys of the experiment info (``get_experiment_info()``) -------------------------------
#: The Experiment object's ``metadata.name``.
INFO_EXPERIMENT_NAME: Final = "experiment_name"
#: The Experiment object's ``metadata.namespace``.
INFO_NAMESPACE: Final = "namespace"
#: The attempt (an int >= 1) in the experiment info from env.
INFO_ATTEMPT: Final = "attempt"

# --- task types ---------------------------------------------------------------------------
MASTER: Final = "master"
CHIEF: Final = "chief"
WORKER: Final = "worker"
PS: Final = "ps"
EVALUATOR: Final = "evaluator"
#: Every replica type, in cluster-definition order.
TASK_TYPES: Final = (MASTER, CHIEF, WORKER, PS, EVALUATOR)

#: The identity used when there is no context (a plain ``python train.py``).
LOCAL_TASK: Final = {"type": MASTER, "index": 0}

FRAMEWORKS: Final = ("none", "tensorflow", "pytorch", "jax")


class Entry(NamedTuple):
    """One row of the reference table: how a value reaches the pod.

    A NamedTuple rather than a dataclass: ``dataclasses`` imports ``inspect``, about
    14 ms that every ``from incluster import context`` would pay.
    """

    getter: str
    env: str
    file: str
    key: str
    example: str
    what: str


#: The reference table (docs/context.md is generated from it; a test keeps it fresh).
REFERENCE: Final = (
    Entry(
        "get_cluster_def()",
        ENV_CLUSTER,
        FILE_CLUSTER,
        "",
        '{"master": ["xp-master-0.xp.ns.svc:2222"], "worker": ["xp-worker-0.xp.ns.svc:2222"]}',
        "Addresses of every replica by type; inlined in env only below a size threshold.",
    ),
    Entry(
        "get_tf_config(envvar=None)",
        ENV_TF_CONFIG,
        FILE_CLUSTER + " + task",
        "",
        '{"cluster": {...}, "task": {"type": "worker", "index": 0}, "environment": "cloud"}',
        "TensorFlow's TF_CONFIG; built from the cluster file when not inlined.",
    ),
    Entry(
        "get_task_info()",
        ENV_TASK_INFO,
        "(env only)",
        "",
        '{"type": "worker", "index": 1}',
        "This replica's identity; always in env (it differs per pod).",
    ),
    Entry(
        "get_experiment_info()",
        ENV_EXPERIMENT_INFO,
        FILE_CONTEXT,
        KEY_EXPERIMENT_INFO,
        '{"project_name": "mnist", "experiment_name": "xp", "experiment_uuid": "..."}',
        "Project, group and experiment names and uuids, plus the namespace.",
    ),
    Entry(
        "get_attempt()",
        ENV_ATTEMPT,
        "(env only)",
        "",
        "2",
        "The whole-experiment attempt (1, +1 per restart); also experiment info's attempt.",
    ),
    Entry(
        "get_declarations()",
        ENV_DECLARATIONS,
        FILE_CONTEXT,
        KEY_DECLARATIONS,
        '{"lr": 0.01, "batch_size": 64}',
        "The experiment's hyperparameters (spec.declarations).",
    ),
    Entry(
        "get_log_level()",
        ENV_LOG_LEVEL,
        FILE_CONTEXT,
        KEY_LOG_LEVEL,
        "INFO",
        "spec.logLevel, or None.",
    ),
    Entry(
        "get_outputs_path()",
        ENV_OUTPUTS_PATH,
        FILE_CONTEXT,
        KEY_OUTPUTS_PATH,
        "/outputs/ns/mnist/xp/0b5e0c1e-7c44-4f4b-9d1c-2a0f3f6f0c11",
        "Where this run writes; <root>/<namespace>/<project>/[<group>/]<experiment>/<run-id>.",
    ),
    Entry(
        "get_outputs_refs_paths()",
        ENV_OUTPUTS_REFS_PATHS,
        FILE_CONTEXT,
        KEY_OUTPUTS_REFS_PATHS,
        '{"jobs": [], "experiments": ["/refs/experiments/xp0"]}',
        "Read-only outputs of the referenced experiments and jobs, in the order given.",
    ),
    Entry(
        "get_data_paths()",
        ENV_DATA_PATHS,
        FILE_CONTEXT,
        KEY_DATA_PATHS,
        '{"data1": "/data/data1"}',
        "Data stores mounted read-only, by name.",
    ),
)


def reference_markdown() -> str:
    """Render the reference table as Markdown (the body of docs/context.md)."""
    lines = [
        "| getter | env var | file | key | example | what |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in REFERENCE:
        key = f"`{e.key}`" if e.key else ""
        lines.append(
            f"| `{e.getter}` | `{e.env}` | `{e.file}` | {key} | `{e.example}` | {e.what} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - used by `make generate`
    print(reference_markdown(), end="")
