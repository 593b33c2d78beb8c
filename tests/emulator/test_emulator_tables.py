"""The Table rules on their own: durations, the JSONPath subset, typed cells, pods, columns."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from devcluster import tables

NOW = datetime.datetime(2026, 1, 10, 12, 0, 0, tzinfo=datetime.UTC)


def ago(seconds: int) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (303, "5m3s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (47 * 3600, "47h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400, "8d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: int, shown: str) -> None:
    assert tables.human_duration(seconds) == shown


def test_since_reads_rfc3339_and_reports_bad_or_missing_times() -> None:
    assert tables.since(ago(303), NOW) == "5m3s"
    assert tables.since("2026-01-10T11:59:00.5+00:00", NOW) == "59s"
    assert tables.since(None, NOW) == "<unknown>"
    assert tables.since("yesterday", NOW) == "<invalid>"
    assert tables.since("2026-01-10", NOW) == "<invalid>"


OBJ: dict[str, Any] = {
    "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "demo"}},
    "spec": {"owners": [{"name": "ada"}, {"name": "bob"}], "size": 3.0, "on": True},
    "status": {
        "conditions": [
            {"type": "Scheduled", "status": "True"},
            {"type": "Ready", "status": "False"},
        ],
        "tracking": {"b": 2, "a": [1, "x"]},
    },
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (".metadata.name", "x"),
        ("{.metadata.name}", "x"),
        (".spec.owners[1].name", "bob"),
        (".metadata.labels['app.kubernetes.io/name']", "demo"),
        ('.status.conditions[?(@.type=="Ready")].status', "False"),
        (".status.conditions[?(@.type=='Scheduled')].status", "True"),
        (".spec.size", 3.0),
        (".status.tracking", {"b": 2, "a": [1, "x"]}),
    ],
)
def test_json_path_subset_reaches_values(path: str, value: Any) -> None:
    assert tables.evaluate(tables.parse_json_path(path), OBJ) == value


@pytest.mark.parametrize(
    "path",
    [
        ".status.missing",
        ".spec.owners[5].name",
        ".metadata.name.deeper",
        ".spec.size[0]",
        '.status.conditions[?(@.type=="Gone")].status',
    ],
)
def test_json_path_misses_are_not_errors(path: str) -> None:
    column = tables.path_column("C", "string", path)
    assert column.cell(OBJ, NOW) is None


@pytest.mark.parametrize("path", ["status.phase", ".a[*].b", ".a..b", ".a[0:2]", ".a[?(@.x>1)]"])
def test_json_path_outside_the_subset_is_refused_with_the_fix(path: str) -> None:
    with pytest.raises(ValueError, match=r"must start with '\.'|not a simple JSONPath"):
        tables.parse_json_path(path)


@pytest.mark.parametrize(
    ("kind", "path", "cell"),
    [
        ("string", ".spec.size", "3"),  # Go's fmt prints a whole float64 without ".0"
        ("string", ".spec.on", "true"),
        ("string", ".status.tracking", '{"a":[1,"x"],"b":2}'),  # json.Marshal sorts keys
        ("integer", ".spec.size", 3),
        ("number", ".spec.size", 3.0),
        ("boolean", ".spec.on", True),
        ("integer", ".spec.on", None),  # a bool is no integer
        ("integer", ".metadata.name", None),
        ("date", ".metadata.name", "<invalid>"),
    ],
)
def test_cells_follow_the_column_type(kind: str, path: str, cell: Any) -> None:
    assert tables.path_column("C", kind, path).cell(OBJ, NOW) == cell


def crd(*versions: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"group": "g.dev", "names": {"plural": "things"}, "versions": list(versions)}}


def test_crd_columns_put_name_first_and_default_to_age() -> None:
    columns = tables.crd_columns(
        crd(
            {
                "name": "v1",
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Node", "type": "string", "jsonPath": ".spec.n", "priority": 1},
                ],
            },
            {"name": "v2"},
            {"name": "v0", "served": False},
        )
    )
    assert set(columns) == {("g.dev", "v1", "things"), ("g.dev", "v2", "things")}
    v1 = [c.definition() for c in columns["g.dev", "v1", "things"]]
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in v1] == [
        ("Name", "string", "name", 0),
        ("Phase", "string", "", 0),
        ("Node", "string", "", 1),
    ]
    assert v1[1]["description"].endswith(".status.phase")
    v2 = columns["g.dev", "v2", "things"]
    assert [(c.name, c.type) for c in v2] == [("Name", "string"), ("Age", "date")]
    assert v2[1].cell({"metadata": {"creationTimestamp": ago(125)}}, NOW) == "2m5s"


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"type": "string", "jsonPath": ".a"}, "name: Required"),
        ({"name": "A", "type": "text", "jsonPath": ".a"}, "type: Unsupported value"),
        ({"name": "A", "type": "string"}, "jsonPath: Required"),
        ({"name": "A", "type": "string", "jsonPath": ".a[*]"}, "jsonPath: Invalid"),
        ({"name": "A", "type": "string", "jsonPath": ".a", "priority": -1}, "priority: Invalid"),
    ],
)
def test_bad_columns_name_the_field(column: dict[str, Any], message: str) -> None:
    with pytest.raises(
        ValueError, match=r"spec\.versions\[0\]\.additionalPrinterColumns\[0\]\." + message
    ):
        tables.crd_columns(crd({"name": "v1", "additionalPrinterColumns": [column]}))


def pod(status: dict[str, Any], *, init: int = 0, containers: int = 1, **meta: Any) -> Any:
    spec = {
        "containers": [{"name": f"c{i}"} for i in range(containers)],
        "initContainers": [{"name": f"i{i}"} for i in range(init)],
    }
    return {"metadata": {"name": "p", **meta}, "spec": spec, "status": status}


def running(name: str, ready: bool = True, restarts: int = 0, **last: Any) -> dict[str, Any]:
    status = {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}}
    if last:
        status["lastState"] = {"terminated": last}
    return status


@pytest.mark.parametrize(
    ("the_pod", "summary"),
    [
        (pod({"phase": "Pending"}), ("0/1", "Pending", "0")),
        (
            pod({"phase": "Running", "containerStatuses": [running("c0")]}),
            ("1/1", "Running", "0"),
        ),
        (
            pod(
                {
                    "phase": "Running",
                    "containerStatuses": [
                        running("c0", restarts=2, exitCode=1, finishedAt=ago(90)),
                        {"name": "c1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    ],
                },
                containers=2,
            ),
            ("1/2", "CrashLoopBackOff", "2 (90s ago)"),
        ),
        (
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i0", "state": {"terminated": {"exitCode": 0}}},
                        {"name": "i1", "state": {"running": {}}},
                    ],
                },
                init=2,
            ),
            ("0/1", "Init:1/2", "0"),
        ),
        (
            pod(
                {
                    "phase": "Failed",
                    "initContainerStatuses": [
                        {"name": "i0", "state": {"terminated": {"exitCode": 3}}},
                    ],
                },
                init=1,
            ),
            ("0/1", "Init:ExitCode:3", "0"),
        ),
        (
            pod(
                {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {
                            "name": "c0",
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        }
                    ],
                }
            ),
            ("0/1", "Completed", "0"),
        ),
        (
            pod(
                {
                    "phase": "Failed",
                    "containerStatuses": [{"name": "c0", "state": {"terminated": {"signal": 9}}}],
                }
            ),
            ("0/1", "Signal:9", "0"),
        ),
        (
            pod(
                {"phase": "Running", "containerStatuses": [running("c0")]}, deletionTimestamp=ago(1)
            ),
            ("1/1", "Terminating", "0"),
        ),
        (pod({"phase": "Failed", "reason": "Evicted"}), ("0/1", "Evicted", "0")),
    ],
)
def test_pod_summary_matches_kubectl(the_pod: Any, summary: tuple[str, str, str]) -> None:
    assert tables.pod_summary(the_pod, NOW) == summary


def test_pod_columns_hide_details_behind_priority() -> None:
    definitions = [c.definition() for c in tables.POD_COLUMNS]
    assert [d["name"] for d in definitions if d["priority"] == 0] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    the_pod = pod({"phase": "Running", "podIP": "127.0.0.9"}, creationTimestamp=ago(30))
    cells = [c.cell(the_pod, NOW) for c in tables.POD_COLUMNS]
    assert cells == ["p", "0/1", "Running", "0", "30s", "127.0.0.9", "<none>", "<none>", "<none>"]


def test_table_rows_carry_metadata_unless_asked_otherwise() -> None:
    item = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"}, "spec": {}}
    default = tables.table([item], tables.DEFAULT_COLUMNS, "7", now=NOW)
    assert default["kind"] == "Table"
    assert default["apiVersion"] == "meta.k8s.io/v1"
    assert default["metadata"] == {"resourceVersion": "7"}
    (row,) = default["rows"]
    assert row["cells"] == ["p", "<unknown>"]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"name": "p", "uid": "u"},
    }
    full = tables.table([item], tables.DEFAULT_COLUMNS, "7", include_object="Object")
    assert full["rows"][0]["object"] == item
    bare = tables.table([item], tables.DEFAULT_COLUMNS, "7", include_object="None")
    assert "object" not in bare["rows"][0]
    with pytest.raises(ValueError, match="includeObject: Unsupported value: 'All'"):
        tables.table([item], tables.DEFAULT_COLUMNS, "7", include_object="All")
