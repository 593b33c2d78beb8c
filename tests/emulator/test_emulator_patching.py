"""The pure functions under the emulator: URL parsing, RBAC verbs, patches and selectors."""

from __future__ import annotations

from typing import Any

import pytest

from devcluster.patching import PatchError, json_patch, merge_patch, strategic_merge_patch
from devcluster.protocol import ParsedPath, parse_path, rbac_verb
from devcluster.selectors import SelectorError, field_selector, label_selector


def test_json_patch_ops_and_a_failing_test_is_422() -> None:
    doc = {"a": 1, "l": [1, 2]}
    ops = [
        {"op": "test", "path": "/a", "value": 1},
        {"op": "add", "path": "/l/-", "value": 3},
        {"op": "remove", "path": "/l/0"},
        {"op": "move", "from": "/a", "path": "/b"},
        {"op": "copy", "from": "/b", "path": "/c"},
        {"op": "replace", "path": "/c", "value": "x"},
    ]
    assert json_patch(doc, ops) == {"l": [2, 3], "b": 1, "c": "x"}
    assert doc == {"a": 1, "l": [1, 2]}  # inputs are never mutated
    with pytest.raises(PatchError) as raised:
        json_patch(doc, [{"op": "test", "path": "/a", "value": 2}])
    assert raised.value.code == 422


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),
        ([{"op": "jump", "path": "/a"}], 400),
        ([{"op": "remove", "path": "/zz"}], 422),
    ],
)
def test_bad_json_patches_name_the_problem(ops: Any, code: int) -> None:
    with pytest.raises(PatchError) as raised:
        json_patch({"a": 1}, ops)
    assert raised.value.code == code


def test_merge_patch_merges_maps_and_null_deletes() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3},
        "l": [2],
    }


def test_strategic_merge_directives() -> None:
    current = {
        "metadata": {"finalizers": ["a"]},
        "spec": {"ports": [{"containerPort": 80, "name": "http"}], "selector": {"x": "1"}},
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "selector": {"$patch": "replace", "y": "2"},
            "$setElementOrder/ports": [{"containerPort": 80}],
        },
    }
    assert strategic_merge_patch(current, patch) == {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {
            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
            "selector": {"y": "2"},
        },
    }
    removed = strategic_merge_patch(current, {"$deleteFromPrimitiveList/finalizers": ["a"]})
    assert removed["finalizers"] == []


def test_label_selector_grammar() -> None:
    obj = {"metadata": {"labels": {"app": "web", "tier": "a"}}}
    assert label_selector("app=web,tier in (a, b)")(obj)
    assert label_selector("app==web,!missing")(obj)
    assert not label_selector("tier notin (a)")(obj)
    assert not label_selector("app!=web")(obj)
    with pytest.raises(SelectorError, match="labelSelector"):
        label_selector("app in (a")


def test_field_selector_reads_dotted_paths() -> None:
    obj = {"metadata": {"name": "p"}, "status": {"phase": "Running"}, "spec": {"flag": True}}
    assert field_selector("metadata.name=p,status.phase!=Pending,spec.flag=true")(obj)
    assert not field_selector("spec.missing=x")(obj)
    with pytest.raises(SelectorError, match="fieldSelector"):
        field_selector("metadata.name")


@pytest.mark.parametrize(
    ("path", "parsed"),
    [
        ("/api/v1/namespaces", ParsedPath("", "v1", "namespaces", None, None, None)),
        ("/api/v1/namespaces/ns1", ParsedPath("", "v1", "namespaces", None, "ns1", None)),
        (
            "/api/v1/namespaces/ns1/status",
            ParsedPath("", "v1", "namespaces", None, "ns1", "status"),
        ),
        ("/api/v1/namespaces/ns1/pods", ParsedPath("", "v1", "pods", "ns1", None, None)),
        (
            "/api/v1/namespaces/ns1/serviceaccounts/sa/token",
            ParsedPath("", "v1", "serviceaccounts", "ns1", "sa", "token"),
        ),
        (
            "/apis/incluster.dev/v1alpha1/experiments",
            ParsedPath("incluster.dev", "v1alpha1", "experiments", None, None, None),
        ),
        ("/apis/apps", None),
        ("/version", None),
    ],
)
def test_parse_path_handles_namespaces_unlike_kmock_0_8(
    path: str, parsed: ParsedPath | None
) -> None:
    assert parse_path(path) == parsed


def test_rbac_verbs_follow_kube_apiserver() -> None:
    assert [
        rbac_verb("GET", None, False),
        rbac_verb("GET", "x", False),
        rbac_verb("GET", None, True),
        rbac_verb("DELETE", None, False),
        rbac_verb("PUT", "x", False),
    ] == ["list", "get", "watch", "deletecollection", "update"]
