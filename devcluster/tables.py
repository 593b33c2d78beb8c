"""meta.k8s.io/v1 Tables for `kubectl get`, built the way kube-apiserver builds them.

kubectl prints whatever columns the server sends, so a real cluster's look depends on the
server: custom resources get NAME plus their CRD's `additionalPrinterColumns` (or AGE when
the CRD declares none), pods get kubelet-aware READY/STATUS/RESTARTS. The rules follow
apiextensions-apiserver's `tableconvertor`, kubernetes' `printPod` and apimachinery's
`duration.HumanDuration`, so users see the same output here as on a cluster.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

ResKey = tuple[str, str, str]  # group, version, plural (as devcluster.discovery.ResKey)
Cell = Callable[[Mapping[str, Any], datetime.datetime], Any]

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is "
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
INCLUDE_OBJECT = ("None", "Metadata", "Object")


@dataclass(frozen=True)
class Column:
    """One column: its TableColumnDefinition and how a row's cell is computed."""

    name: str
    type: str
    cell: Cell
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


# -- durations and times ---------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: the AGE kubectl users know ("5m3s", "3d4h")."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: str) -> datetime.datetime:
    """An RFC 3339 time as metav1.Time accepts it ("2024-01-02T03:04:05Z", offsets, fractions)."""
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None or "T" not in value.upper():
        raise ValueError(f"{value!r} is not an RFC 3339 time")
    return moment


def since(value: Any, now: datetime.datetime) -> str:
    """How long ago an RFC 3339 timestamp was; "<unknown>" when unset, as kube prints it."""
    if not value:
        return "<unknown>"
    try:
        return human_duration((now - parse_time(str(value))).total_seconds())
    except ValueError:
        return "<invalid>"


# -- the JSONPath subset CRD printer columns use ---------------------------------------------


class Filter(NamedTuple):
    """`[?(@.type=="Ready")]`: the list items whose `path` equals `value`."""

    path: tuple[str, ...]
    value: str


Step = str | int | Filter

_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-/]+)
      | \[(?P<index>\d+)\]
      | \[(?P<quote>['"])(?P<key>.*?)(?P=quote)\]
      | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_\-]+)+)
          \s*==\s*(?P<fquote>['"])(?P<fvalue>.*?)(?P=fquote)\)\]
    """,
    re.VERBOSE,
)


def parse_json_path(path: str) -> tuple[Step, ...]:
    """Split `.a.b`, `.a[0].b`, `.a['x.y']`, `.a[?(@.k=="v")].b` into steps.

    Raises ValueError for anything else (wildcards, slices, unions, recursive descent):
    a column whose path cannot be read would otherwise be silently empty.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if not text.startswith("."):
        raise ValueError(f"{path!r} must start with '.', e.g. .status.phase")
    steps: list[Step] = []
    position = 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise ValueError(
                f"{path!r} is not a simple JSONPath at {text[position:]!r}; use fields "
                "(.a.b), indices (.a[0]), quoted keys (.a['b.c']) or equality filters "
                '(.a[?(@.type=="Ready")].status)'
            )
        if match["field"] is not None:
            steps.append(match["field"])
        elif match["index"] is not None:
            steps.append(int(match["index"]))
        elif match["quote"] is not None:
            steps.append(match["key"])
        else:
            steps.append(Filter(tuple(match["fpath"].strip(".").split(".")), match["fvalue"]))
        position = match.end()
    return tuple(steps)


_MISSING = object()


def evaluate(steps: Sequence[Step], value: Any) -> Any:
    """The first value `steps` reach in `value`, or `_MISSING` (absent keys are not errors)."""
    for position, step in enumerate(steps):
        if isinstance(step, Filter):
            if not isinstance(value, list):
                return _MISSING
            for item in value:
                if _scalar_text(evaluate(step.path, item)) == step.value:
                    found = evaluate(steps[position + 1 :], item)
                    if found is not _MISSING:
                        return found
            return _MISSING
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return _MISSING
    return value


def _scalar_text(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    return value if isinstance(value, str) else go_text(value)


def go_text(value: Any) -> str:
    """A value as Go's jsonpath prints it: JSON for maps and lists, `fmt.Print` otherwise."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def typed_cell(kind: str, value: Any, now: datetime.datetime) -> Any:
    """apiextensions' `cellForJSONValue`: the cell for a value, None when the type disagrees."""
    if value is _MISSING or value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else go_text(value)
    if isinstance(value, bool):
        return value if kind == "boolean" else None
    if kind == "integer" and isinstance(value, int | float):
        return int(value)
    if kind == "number" and isinstance(value, int | float):
        return float(value)
    if kind == "date" and isinstance(value, str):
        return since(value, now)
    return None


# -- columns -----------------------------------------------------------------------------------


def _name(obj: Mapping[str, Any], _now: datetime.datetime) -> Any:
    return obj["metadata"]["name"]


def _age(obj: Mapping[str, Any], now: datetime.datetime) -> Any:
    return since(obj["metadata"].get("creationTimestamp"), now)


NAME = Column("Name", "string", _name, format="name", description=NAME_DESCRIPTION)
AGE = Column("Age", "string", _age, description=CREATED_DESCRIPTION)
#: Built-ins without a printer of their own here (kube has one per kind; NAME and AGE fit all).
DEFAULT_COLUMNS = (NAME, AGE)
#: A CRD without additionalPrinterColumns gets this one (apiextensions' default column).
DEFAULT_CRD_COLUMN = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": CREATED_DESCRIPTION,
}


def path_column(
    name: str,
    kind: str,
    path: str,
    *,
    format: str = "",
    description: str = "",
    priority: int = 0,
) -> Column:
    """A CRD printer column: the JSONPath is parsed once, when the CRD is registered."""
    steps = parse_json_path(path)

    def cell(obj: Mapping[str, Any], now: datetime.datetime) -> Any:
        return typed_cell(kind, evaluate(steps, obj), now)

    return Column(
        name,
        kind,
        cell,
        format=format,
        description=description
        or f"Custom resource definition column (in JSONPath format): {path}",
        priority=priority,
    )


def _version_columns(version: Mapping[str, Any], where: str) -> tuple[Column, ...]:
    declared = version.get("additionalPrinterColumns") or [DEFAULT_CRD_COLUMN]
    columns = [NAME]
    for position, spec in enumerate(declared):
        field = f"{where}.additionalPrinterColumns[{position}]"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{field}: must be an object with name, type and jsonPath")
        name, kind, path = spec.get("name"), spec.get("type"), spec.get("jsonPath")
        if not name or not isinstance(name, str):
            raise ValueError(f"{field}.name: Required value")
        if kind not in COLUMN_TYPES:
            raise ValueError(
                f"{field}.type: Unsupported value: {kind!r}: supported values: "
                + ", ".join(f'"{t}"' for t in COLUMN_TYPES)
            )
        if not path or not isinstance(path, str):
            raise ValueError(f"{field}.jsonPath: Required value")
        priority = spec.get("priority") or 0
        if not isinstance(priority, int) or priority < 0:
            raise ValueError(f"{field}.priority: Invalid value: {priority!r}: must be >= 0")
        try:
            columns.append(
                path_column(
                    name,
                    kind,
                    path,
                    format=str(spec.get("format") or ""),
                    description=str(spec.get("description") or ""),
                    priority=priority,
                )
            )
        except ValueError as e:
            raise ValueError(f"{field}.jsonPath: Invalid value: {e}") from e
    return tuple(columns)


def crd_columns(crd: Mapping[str, Any]) -> dict[ResKey, tuple[Column, ...]]:
    """The columns of each served version of a CRD (NAME first); ValueError names the field."""
    spec = crd.get("spec") or {}
    group, plural = spec.get("group") or "", (spec.get("names") or {}).get("plural") or ""
    result: dict[ResKey, tuple[Column, ...]] = {}
    for position, version in enumerate(spec.get("versions") or []):
        if not version.get("served", True) or not version.get("name"):
            continue
        where = f"spec.versions[{position}]"
        result[(group, version["name"], plural)] = _version_columns(version, where)
    return result


# -- pods: kubernetes' printPod ------------------------------------------------------------------


def _restartable(container: Mapping[str, Any] | None) -> bool:
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def _has_condition(status: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _terminated_reason(terminated: Mapping[str, Any], prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


class PodSummary(NamedTuple):
    ready: str
    status: str
    restarts: str


def pod_summary(pod: Mapping[str, Any], now: datetime.datetime) -> PodSummary:
    """READY, STATUS and RESTARTS as `kubectl get pods` shows them (kubernetes' printPod)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(map(_restartable, init_specs.values()))
    ready = restarts = sidecar_restarts = 0
    last_restart: str = ""
    sidecar_last_restart: str = ""
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for position, container in enumerate(init_statuses):
        restarts += int(container.get("restartCount") or 0)
        finished = ((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        last_restart = max(last_restart, finished or "")
        state = container.get("state") or {}
        sidecar = _restartable(init_specs.get(container.get("name")))
        if sidecar:
            sidecar_restarts += int(container.get("restartCount") or 0)
            sidecar_last_restart = max(sidecar_last_restart, finished or "")
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if sidecar and container.get("started"):
            ready += bool(container.get("ready"))
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{position}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _has_condition(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            finished = ((container.get("lastState") or {}).get("terminated") or {}).get(
                "finishedAt"
            )
            last_restart = max(last_restart, finished or "")
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated, "")
            elif container.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _has_condition(status, "Ready") else "NotReady"
    if pod["metadata"].get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    shown = str(restarts)
    if restarts and last_restart:
        shown = f"{restarts} ({since(last_restart, now)} ago)"
    return PodSummary(f"{ready}/{total}", reason, shown)


def _pod_field(pick: Callable[[PodSummary], str]) -> Cell:
    return lambda pod, now: pick(pod_summary(pod, now))


def _or_none(*path: str) -> Cell:
    def cell(pod: Mapping[str, Any], _now: datetime.datetime) -> Any:
        value: Any = pod
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value or "<none>"

    return cell


def _readiness_gates(pod: Mapping[str, Any], _now: datetime.datetime) -> Any:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = {
        c.get("type")
        for c in (pod.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    wanted = [g.get("conditionType") for g in gates]
    return f"{sum(g in conditions for g in wanted)}/{len(wanted)}"


POD_COLUMNS = (
    NAME,
    Column(
        "Ready",
        "string",
        _pod_field(lambda s: s.ready),
        description="The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column(
        "Status",
        "string",
        _pod_field(lambda s: s.status),
        description="The aggregate status of the containers in this pod.",
    ),
    Column(
        "Restarts",
        "string",
        _pod_field(lambda s: s.restarts),
        description="The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    AGE,
    Column(
        "IP",
        "string",
        _or_none("status", "podIP"),
        priority=1,
        description=(
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if "
            "not yet allocated."
        ),
    ),
    Column(
        "Node",
        "string",
        _or_none("spec", "nodeName"),
        priority=1,
        description=("NodeName indicates in which node this pod is scheduled."),
    ),
    Column(
        "Nominated Node",
        "string",
        _or_none("status", "nominatedNodeName"),
        priority=1,
        description="nominatedNodeName is set only when this pod preempts other pods on the node.",
    ),
    Column(
        "Readiness Gates",
        "string",
        _readiness_gates,
        priority=1,
        description="If specified, all readiness gates will be evaluated for pod readiness.",
    ),
)
BUILTIN_COLUMNS: dict[ResKey, tuple[Column, ...]] = {("", "v1", "pods"): POD_COLUMNS}


# -- the Table ------------------------------------------------------------------------------------


def row_object(obj: Mapping[str, Any], include: str) -> dict[str, Any] | None:
    """What a row carries (TableOptions.includeObject): metadata by default, as kube does."""
    if include == "None":
        return None
    if include == "Object":
        return dict(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def table(
    items: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    resource_version: str,
    *,
    include_object: str = "Metadata",
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of `items`; ValueError names a bad `includeObject`."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(
            f"includeObject: Unsupported value: {include_object!r}: supported values: "
            + ", ".join(f'"{v}"' for v in INCLUDE_OBJECT)
        )
    moment = now or datetime.datetime.now(tz=datetime.UTC)
    rows = []
    for item in items:
        row: dict[str, Any] = {"cells": [column.cell(item, moment) for column in columns]}
        shown = row_object(item, include_object)
        if shown is not None:
            row["object"] = shown
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [column.definition() for column in columns],
        "rows": rows,
    }
