"""Load the run context: env first, then the mounted files, then local defaults.

Every getter re-reads its source (env can change under a test, files are replaced
atomically by the kubelet), except that a parsed file is cached by (path, mtime, size).
A value that is present but broken raises ContextError; only an absent context falls
back to the documented local defaults, so ``python train.py`` works unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from incluster import contract, topology
from incluster.errors import ContextError

_file_cache: dict[Path, tuple[tuple[int, int], Any]] = {}


def context_dir() -> Path | None:
    """The directory of the context files, or None outside a cluster.

    ``INCLUSTER_CONTEXT_DIR`` set means "the operator mounted a context here": a missing
    directory is then an error. Unset, the default mount point is used if it holds a
    context document.
    """
    configured = os.environ.get(contract.ENV_CONTEXT_DIR)
    if configured:
        path = Path(configured)
        if not path.is_dir():
            raise ContextError(
                f"{contract.ENV_CONTEXT_DIR}={configured!r} does not name a directory; "
                "the context volume is not mounted"
            )
        return path
    default = Path(contract.DEFAULT_CONTEXT_DIR)
    return default if (default / contract.FILE_CONTEXT).is_file() else None


def read_json_file(path: Path) -> Any:
    """Parse a JSON file, cached by mtime and size, with a ContextError naming the file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ContextError(f"context file {path} is missing") from None
    key = (st.st_mtime_ns, st.st_size)
    cached = _file_cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ContextError(f"context file {path} is not valid JSON: {exc}") from None
    _file_cache[path] = (key, value)
    return value


def env_json(name: str) -> Any:
    """The JSON value of an env var, or None when unset; ContextError when malformed."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ContextError(f"env var {name} is not valid JSON: {exc}") from None


def document() -> dict[str, Any] | None:
    """The experiment-wide context document (``context.json``), or None outside a cluster."""
    directory = context_dir()
    if directory is None:
        return None
    doc = read_json_file(directory / contract.FILE_CONTEXT)
    path = directory / contract.FILE_CONTEXT
    if not isinstance(doc, dict):
        raise ContextError(f"context file {path} must hold a JSON object")
    version = doc.get(contract.KEY_VERSION)
    if not isinstance(version, int) or version > contract.CONTEXT_VERSION:
        raise ContextError(
            f"context file {path} has version {version!r}; this SDK reads versions "
            f"<= {contract.CONTEXT_VERSION}: upgrade the incluster package in the image"
        )
    return doc


def _value(env: str, key: str, expected: type, default: Any) -> Any:
    """env var (JSON) -> context.json key -> default, type-checked."""
    value = env_json(env)
    source = f"env var {env}"
    if value is None:
        doc = document()
        if doc is None or key not in doc:
            return default
        value = doc[key]
        source = f"key {key!r} of {contract.FILE_CONTEXT}"
    if not isinstance(value, expected):
        raise ContextError(f"{source} must be a JSON {expected.__name__}, got {value!r}")
    return value


def is_in_cluster() -> bool:
    """True when an operator-provided context is present (env or mounted files)."""
    return os.environ.get(contract.ENV_TASK_INFO) is not None or context_dir() is not None


def get_task_info() -> dict[str, Any]:
    """This replica's ``{"type", "index"}``; ``master:0`` outside a cluster."""
    value = env_json(contract.ENV_TASK_INFO)
    if value is None:
        return dict(contract.LOCAL_TASK)
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("type"), str)
        or not isinstance(value.get("index"), int)
    ):
        raise ContextError(
            f"env var {contract.ENV_TASK_INFO} must be {{'type': str, 'index': int}}, got {value!r}"
        )
    return {"type": value["type"], "index": value["index"]}


def _check_cluster(value: Any, source: str) -> dict[str, list[str]]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(a, str) for a in v)
        for k, v in value.items()
    ):
        raise ContextError(f"{source} must map task types to lists of 'host:port' strings")
    return value


def get_cluster_def() -> dict[str, list[str]]:
    """The cluster definition: env if inlined, else ``cluster.json``, else ``{}``."""
    value = env_json(contract.ENV_CLUSTER)
    if value is not None:
        return _check_cluster(value, f"env var {contract.ENV_CLUSTER}")
    directory = context_dir()
    if directory is None:
        return {}
    path = directory / contract.FILE_CLUSTER
    return _check_cluster(read_json_file(path), f"context file {path}")


def get_tf_config(envvar: str | None = None) -> dict[str, Any]:
    """TF_CONFIG from env, or built from the cluster file and the task.

    With ``envvar``, the result is also exported as ``os.environ[envvar]`` (as the seed
    API does), which is how a large cluster reaches TensorFlow without inflating the pod.
    """
    value: dict[str, Any] | None = env_json(contract.ENV_TF_CONFIG)
    if value is None:
        task = get_task_info()
        value = topology.tf_config(get_cluster_def(), task["type"], task["index"])
    elif not isinstance(value, dict):
        raise ContextError(f"env var {contract.ENV_TF_CONFIG} must be a JSON object")
    if envvar:
        os.environ[envvar] = json.dumps(value, separators=(",", ":"))
    return value


def get_experiment_info() -> dict[str, Any]:
    """Project/group/experiment names and uuids; ``{}`` outside a cluster."""
    info: dict[str, Any] = _value(
        contract.ENV_EXPERIMENT_INFO, contract.KEY_EXPERIMENT_INFO, dict, {}
    )
    return dict(info)


def get_declarations() -> dict[str, Any]:
    """The experiment's hyperparameters; ``{}`` outside a cluster."""
    return dict(_value(contract.ENV_DECLARATIONS, contract.KEY_DECLARATIONS, dict, {}))


def get_log_level() -> str | None:
    """The experiment's log level (a plain string in env, not JSON), or None."""
    raw = os.environ.get(contract.ENV_LOG_LEVEL)
    if raw:
        return raw
    doc = document()
    value = None if doc is None else doc.get(contract.KEY_LOG_LEVEL)
    if value is not None and not isinstance(value, str):
        raise ContextError(f"key {contract.KEY_LOG_LEVEL!r} of context.json must be a string")
    return value


def local_outputs_path() -> str:
    """Where a run without context writes: ``$INCLUSTER_LOCAL_OUTPUTS_ROOT`` or ./outputs."""
    root = os.environ.get(contract.ENV_LOCAL_OUTPUTS_ROOT) or "outputs"
    return str(Path(root).absolute() / "local")


def get_outputs_path() -> str:
    """This experiment's outputs directory (a plain path string in env)."""
    raw = os.environ.get(contract.ENV_OUTPUTS_PATH)
    if raw:
        return raw
    doc = document()
    if doc is None:
        return local_outputs_path()
    value = doc.get(contract.KEY_OUTPUTS_PATH)
    if not isinstance(value, str) or not value:
        raise ContextError(
            f"key {contract.KEY_OUTPUTS_PATH!r} of context.json must be a non-empty string"
        )
    return value


def get_outputs_refs_paths() -> dict[str, list[str]]:
    """Outputs paths of referenced jobs and experiments, in the order requested."""
    value = _value(contract.ENV_OUTPUTS_REFS_PATHS, contract.KEY_OUTPUTS_REFS_PATHS, dict, {})
    return {"jobs": list(value.get("jobs", [])), "experiments": list(value.get("experiments", []))}


def get_data_paths() -> dict[str, str]:
    """Mounted data stores by name; ``{}`` outside a cluster."""
    return dict(_value(contract.ENV_DATA_PATHS, contract.KEY_DATA_PATHS, dict, {}))


def is_distributed() -> bool:
    """True when the cluster definition holds more than one replica."""
    return sum(len(v) for v in get_cluster_def().values()) > 1
