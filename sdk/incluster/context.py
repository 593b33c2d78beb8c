"""Load the run context: env first, then the mounted files, then local defaults.

Every getter re-reads its source (env can change under a test, and the kubelet swaps
mounted files atomically), but a parsed and validated file is cached by its identity
(inode, mtime, size), so reading a 5,000-replica cluster file costs one parse per change.

A value that is present but broken raises ContextError naming the variable or file and
the fault; only an absent context falls back to the documented local defaults, so
``python train.py`` runs unchanged on a laptop while a broken pod fails loudly instead
of silently training as a single replica. An env var set to the empty string counts as
unset (``VAR= python train.py`` is how shells drop a variable).

Getters return fresh objects: mutating a result never changes what the next call sees.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from incluster import contract, topology
from incluster.errors import ContextError

T = TypeVar("T")

#: An immutable cluster definition as cached: task type -> addresses.
_FrozenCluster = dict[str, tuple[str, ...]]

_UNSET: Any = object()
_cache_lock = threading.Lock()
#: (path, validator) -> (file identity, validated value). Values are never handed out
#: directly (callers copy), so sharing them between threads is safe.
_file_cache: dict[tuple[Path, Callable[..., Any]], tuple[tuple[int, int, int], Any]] = {}


def context_dir() -> Path | None:
    """The directory of the context files, or None outside a cluster.

    ``INCLUSTER_CONTEXT_DIR`` set means "the operator mounted a context here": a missing
    directory is then an error, not a local run. Unset, the default mount point is used
    if it holds a context document.
    """
    configured = os.environ.get(contract.ENV_CONTEXT_DIR)
    if configured:
        path = Path(configured)
        if not path.is_dir():
            raise ContextError(
                f"env var {contract.ENV_CONTEXT_DIR}={configured!r} does not name a "
                "directory: the context volume is not mounted (mount it, or unset the "
                "variable to run locally)"
            )
        return path
    default = Path(contract.DEFAULT_CONTEXT_DIR)
    return default if (default / contract.FILE_CONTEXT).is_file() else None


def _read_validated(path: Path, validate: Callable[[Any, str], T]) -> T:
    """Parse a JSON file and validate it once per file version; errors name the file."""
    source = f"context file {path}"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ContextError(
            f"{source} is missing; the operator writes it into {contract.ENV_CONTEXT_DIR}"
        ) from None
    except OSError as exc:
        raise ContextError(f"{source} cannot be read: {exc.strerror or exc}") from None
    identity = (st.st_ino, st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _file_cache.get((path, validate))
    if cached is not None and cached[0] == identity:
        value: T = cached[1]
        return value
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContextError(f"{source} cannot be read: {exc.strerror or exc}") from None
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ContextError(f"{source} is not valid JSON: {exc}") from None
    value = validate(parsed, source)
    with _cache_lock:
        _file_cache[(path, validate)] = (identity, value)
    return value


def env_name(name: str) -> str:
    """The variable that holds ``name``'s value: ``name``, or its seed alias when only the
    alias is set (``POLYAXON_TASK_INFO`` for ``INCLUSTER_TASK_INFO``; contract.SEED_ENV)."""
    if os.environ.get(name):
        return name
    alias = contract.SEED_ENV.get(name)
    return alias if alias and os.environ.get(alias) else name


def env_value(name: str) -> str | None:
    """A plain env value by our name, falling back to its seed alias; None when unset/empty."""
    return os.environ.get(env_name(name)) or None


def env_json(name: str) -> Any:
    """The JSON value of an env var, ``_UNSET`` when unset or empty; ContextError if bad.

    Our name wins; the seed's ``POLYAXON_`` alias is read only when ours is absent.
    """
    actual = env_name(name)
    raw = os.environ.get(actual)
    if not raw:
        return _UNSET
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ContextError(f"env var {actual} is not valid JSON: {exc}") from None


def _check_document(doc: Any, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ContextError(f"{source} must hold a JSON object, got {type(doc).__name__}")
    version = doc.get(contract.KEY_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ContextError(
            f"{source} must have an integer {contract.KEY_VERSION!r} >= 1, got {version!r}"
        )
    if version > contract.CONTEXT_VERSION:
        raise ContextError(
            f"{source} has version {version}; this SDK reads versions "
            f"<= {contract.CONTEXT_VERSION}: upgrade the incluster package in the image"
        )
    return doc


def document() -> dict[str, Any] | None:
    """The experiment-wide context document (``context.json``), or None outside a cluster."""
    directory = context_dir()
    if directory is None:
        return None
    return copy.deepcopy(_read_validated(directory / contract.FILE_CONTEXT, _check_document))


def _lookup(env: str, key: str) -> tuple[Any, str]:
    """(value, source) from the env var (JSON), else the ``context.json`` key, else unset."""
    value = env_json(env)
    if value is not _UNSET:
        return value, f"env var {env_name(env)}"
    directory = context_dir()
    if directory is None:
        return _UNSET, ""
    doc = _read_validated(directory / contract.FILE_CONTEXT, _check_document)
    if key not in doc:
        return _UNSET, ""
    return copy.deepcopy(doc[key]), f"key {key!r} of {directory / contract.FILE_CONTEXT}"


def _object(env: str, key: str) -> dict[str, Any]:
    """A JSON object from env or context.json; ``{}`` when neither has it."""
    value, source = _lookup(env, key)
    if value is _UNSET:
        return {}
    if not isinstance(value, dict):
        raise ContextError(f"{source} must be a JSON object, got {value!r}")
    return value


def is_in_cluster() -> bool:
    """True when an operator-provided context is present (env or mounted files)."""
    return (
        env_value(contract.ENV_TASK_INFO) is not None
        or env_value(contract.ENV_CLUSTER) is not None
        or context_dir() is not None
    )


def _check_task(value: Any, source: str) -> dict[str, Any]:
    if (
        not isinstance(value, dict)
        or set(value) != {"type", "index"}
        or not isinstance(value["type"], str)
        or isinstance(value["index"], bool)
        or not isinstance(value["index"], int)
    ):
        raise ContextError(
            f'{source} must be {{"type": <task type>, "index": <int>}}, got {value!r}'
        )
    if value["type"] not in contract.TASK_TYPES:
        raise ContextError(
            f"{source}: task type {value['type']!r} is unknown; "
            f"expected one of {list(contract.TASK_TYPES)}"
        )
    if value["index"] < 0:
        raise ContextError(f"{source}: task index {value['index']} must be >= 0")
    return {"type": value["type"], "index": value["index"]}


def get_task_info() -> dict[str, Any]:
    """This replica's ``{"type", "index"}``; ``master:0`` outside a cluster.

    The identity is per pod, so it lives in env only. Inside a context (a context
    directory or an inlined cluster) it must be set and have a place in the cluster
    definition: defaulting to master 0 there would make every replica believe it is
    the chief.
    """
    value = env_json(contract.ENV_TASK_INFO)
    cluster = get_cluster_def()
    if value is _UNSET:
        if cluster or context_dir() is not None:
            raise ContextError(
                f"env var {contract.ENV_TASK_INFO} is unset but a run context is present; "
                'the operator sets it to {"type": ..., "index": ...} in every container'
            )
        return dict(contract.LOCAL_TASK)
    source = f"env var {env_name(contract.ENV_TASK_INFO)}"
    task = _check_task(value, source)
    if cluster:
        try:
            topology.check_task(cluster, task["type"], task["index"])
        except ContextError as exc:
            raise ContextError(f"{source}: {exc}") from None
    return task


def _check_cluster(value: Any, source: str) -> _FrozenCluster:
    if not isinstance(value, dict):
        raise ContextError(
            f"{source} must be a JSON object mapping task types to lists of 'host:port' "
            f"strings, got {type(value).__name__}"
        )
    frozen: _FrozenCluster = {}
    for task_type, addresses in value.items():
        if task_type not in contract.TASK_TYPES:
            raise ContextError(
                f"{source}: task type {task_type!r} is unknown; "
                f"expected one of {list(contract.TASK_TYPES)}"
            )
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ContextError(
                f"{source}: {task_type!r} must be a list of 'host:port' strings, got {addresses!r}"
            )
        for address in addresses:
            try:
                topology.split_address(address)
            except ContextError as exc:
                raise ContextError(f"{source}: {task_type!r}: {exc}") from None
        frozen[task_type] = tuple(addresses)
    return frozen


def _cluster_in_file() -> bool:
    flag = os.environ.get(contract.ENV_CLUSTER_IN_FILE, "")
    if flag not in ("", "0", "1"):
        raise ContextError(
            f"env var {contract.ENV_CLUSTER_IN_FILE} must be '0' or '1', got {flag!r}"
        )
    return flag == "1"


def get_cluster_def() -> dict[str, list[str]]:
    """The cluster definition: env if inlined, else ``cluster.json``, else ``{}``.

    The operator inlines the cluster in env only below a size threshold; above it the
    pod carries ``INCLUSTER_CLUSTER_IN_FILE=1`` and the file is the only source, so a
    missing context directory is then an error rather than "not distributed".
    """
    value = env_json(contract.ENV_CLUSTER)
    if value is not _UNSET:
        frozen = _check_cluster(value, f"env var {env_name(contract.ENV_CLUSTER)}")
    else:
        directory = context_dir()
        if directory is None:
            if _cluster_in_file():
                raise ContextError(
                    f"env var {contract.ENV_CLUSTER_IN_FILE}=1 says the cluster definition "
                    f"is in {contract.FILE_CLUSTER}, but no context directory is mounted "
                    f"(set {contract.ENV_CONTEXT_DIR})"
                )
            return {}
        frozen = _read_validated(directory / contract.FILE_CLUSTER, _check_cluster)
    return {task_type: list(addresses) for task_type, addresses in frozen.items()}


def _check_tf_config(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not {"cluster", "task"} <= set(value):
        raise ContextError(
            f'{source} must be a JSON object with "cluster" and "task", got {value!r:.200}'
        )
    cluster = _check_cluster(value["cluster"], f"{source}: cluster")
    task = _check_task(value["task"], f"{source}: task")
    try:
        topology.check_task(cluster, task["type"], task["index"])
    except ContextError as exc:
        raise ContextError(f"{source}: {exc}") from None
    return value


def get_tf_config(envvar: str | None = None) -> dict[str, Any]:
    """TF_CONFIG from env, or built from the cluster definition and this task.

    With ``envvar``, the result is also exported as ``os.environ[envvar]`` (as the seed
    API does), which is how a large cluster reaches TensorFlow without inflating the pod.
    Outside a cluster (no cluster definition) the result is ``{}`` and env is left
    untouched: TensorFlow then trains locally.
    """
    value = env_json(contract.ENV_TF_CONFIG)
    if value is not _UNSET:
        config = _check_tf_config(value, f"env var {contract.ENV_TF_CONFIG}")
    else:
        cluster = get_cluster_def()
        if not cluster:
            return {}
        task = get_task_info()
        config = topology.tf_config(cluster, task["type"], task["index"])
    if envvar:
        os.environ[envvar] = json.dumps(config, separators=(",", ":"))
    return config


def get_experiment_info() -> dict[str, Any]:
    """Project/group/experiment names and uuids; ``{}`` outside a cluster."""
    return _object(contract.ENV_EXPERIMENT_INFO, contract.KEY_EXPERIMENT_INFO)


def get_attempt() -> int:
    """Which attempt of the whole experiment this pod runs (``INCLUSTER_ATTEMPT``; 1 if unset).

    The operator starts attempt 2, 3, ... after a retriable failure under
    ``runPolicy.failurePolicy.restartExperiment``; resume from a checkpoint when > 1.
    """
    raw = os.environ.get(contract.ENV_ATTEMPT)
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ContextError(f"env var {contract.ENV_ATTEMPT} must be an int >= 1, got {raw!r}")
    return int(raw)


def get_declarations() -> dict[str, Any]:
    """The experiment's hyperparameters; ``{}`` outside a cluster."""
    return _object(contract.ENV_DECLARATIONS, contract.KEY_DECLARATIONS)


def _file_string(key: str) -> tuple[str | None, str]:
    """A string key of context.json, or None (absent key or no context)."""
    directory = context_dir()
    if directory is None:
        return None, ""
    path = directory / contract.FILE_CONTEXT
    value = _read_validated(path, _check_document).get(key)
    source = f"key {key!r} of {path}"
    if value is not None and not isinstance(value, str):
        raise ContextError(f"{source} must be a string, got {value!r}")
    return value, source


def get_log_level() -> str | None:
    """The experiment's log level (a plain string in env, not JSON), or None."""
    raw = env_value(contract.ENV_LOG_LEVEL)
    if raw:
        return raw
    value, _ = _file_string(contract.KEY_LOG_LEVEL)
    return value or None


def local_outputs_path() -> str:
    """Where a run without context writes: ``$INCLUSTER_LOCAL_OUTPUTS_ROOT/local``.

    The root defaults to ``./outputs`` and is resolved against the current directory at
    call time, so a local run writes beside the script's working directory.
    """
    root = os.environ.get(contract.ENV_LOCAL_OUTPUTS_ROOT) or "outputs"
    return str(Path(root).absolute() / "local")


def get_outputs_path() -> str:
    """This experiment's outputs directory (a plain path string in env).

    Inside a context the path is required: writing outputs to a local default inside
    a pod would lose them when the pod goes.
    """
    raw = env_value(contract.ENV_OUTPUTS_PATH)
    if raw:
        return raw
    if context_dir() is None:
        return local_outputs_path()
    value, source = _file_string(contract.KEY_OUTPUTS_PATH)
    if not value:
        raise ContextError(
            f"{source} must be a non-empty string (and {contract.ENV_OUTPUTS_PATH} is "
            "unset): the context does not say where this experiment writes"
        )
    return value


def get_outputs_url() -> str | None:
    """The object-store URL standing for ``get_outputs_path()``, or None (no store).

    Set by the operator when its outputs store is ``s3://``, ``gs://`` or ``az://``; the
    SDK then uploads what the run writes under the outputs path to the same place under
    this URL.
    """
    raw = os.environ.get(contract.ENV_OUTPUTS_URL)
    if not raw:
        return None
    scheme, sep, rest = raw.partition("://")
    if not sep or not rest or scheme not in ("s3", "gs", "gcs", "az", "abfs", "abfss"):
        raise ContextError(
            f"env var {contract.ENV_OUTPUTS_URL}={raw!r} must be an s3://, gs:// or az:// URL"
        )
    return raw.rstrip("/")


def get_upload_seconds() -> float:
    """Seconds between two uploads of new event lines (``INCLUSTER_UPLOAD_SECONDS``, 10)."""
    raw = os.environ.get(contract.ENV_UPLOAD_SECONDS)
    if not raw:
        return 10.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ContextError(
            f"env var {contract.ENV_UPLOAD_SECONDS}={raw!r} must be a number of seconds > 0"
        )
    return value


def _string_list(value: Any, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ContextError(f"{source} must be a list of path strings, got {value!r}")
    return value


def get_outputs_refs_paths() -> dict[str, list[str]]:
    """Outputs paths of referenced jobs and experiments, in the order requested."""
    value, source = _lookup(contract.ENV_OUTPUTS_REFS_PATHS, contract.KEY_OUTPUTS_REFS_PATHS)
    if value is _UNSET:
        return {"jobs": [], "experiments": []}
    if not isinstance(value, dict) or not set(value) <= {"jobs", "experiments"}:
        raise ContextError(
            f'{source} must be a JSON object with only "jobs" and "experiments", got {value!r}'
        )
    return {
        kind: _string_list(value.get(kind, []), f"{source}: {kind!r}")
        for kind in ("jobs", "experiments")
    }


def get_data_paths() -> dict[str, str]:
    """Mounted data stores by name; ``{}`` outside a cluster."""
    value, source = _lookup(contract.ENV_DATA_PATHS, contract.KEY_DATA_PATHS)
    if value is _UNSET:
        return {}
    if not isinstance(value, dict) or not all(isinstance(p, str) for p in value.values()):
        raise ContextError(f"{source} must map data store names to path strings, got {value!r}")
    return value


def is_distributed() -> bool:
    """True when the cluster definition holds more than one replica."""
    return sum(len(v) for v in get_cluster_def().values()) > 1
