"""API discovery documents and the resource table, including CRD-defined kinds.

kmock 0.8 reports the core group as `/v1` and mis-parses `/api/v1/namespaces`; kubectl and
kopf need exact discovery documents, so they are rendered here from the table.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
from collections.abc import Iterable, Mapping
from typing import Any

import kmock

DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CRD_RESOURCE = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")

ResKey = tuple[str, str, str]  # group, version, plural


@functools.cache
def _bundled() -> tuple[tuple[kmock.resource, kmock.ResourceInfo], ...]:
    """kmock's bundled built-in resources (a k3s discovery dump), parsed once per process."""
    blob = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
    table = kmock.ResourcesArray()
    table.load_data(gzip.decompress(blob))
    return tuple((ref, table[ref]) for ref in table)


def builtin_resources() -> dict[kmock.resource, kmock.ResourceInfo]:
    """Fresh copies: an emulator may change its table (CRDs, tests) without leaking."""
    return {
        ref: kmock.ResourceInfo(
            namespaced=info.namespaced,
            kind=info.kind,
            singular=info.singular,
            verbs=set(info.verbs),
            shortnames=set(info.shortnames),
            categories=set(info.categories),
            subresources=set(info.subresources),
        )
        for ref, info in _bundled()
    }


def group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def crd_resources(crd: Mapping[str, Any]) -> dict[ResKey, kmock.ResourceInfo]:
    """The served resources a CustomResourceDefinition declares, one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural = spec.get("group"), names.get("plural")
    if not group or not plural or not names.get("kind"):
        raise ValueError("spec.group, spec.names.plural and spec.names.kind are required")
    result: dict[ResKey, kmock.ResourceInfo] = {}
    for version in spec.get("versions") or []:
        if not version.get("served", True) or not version.get("name"):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        result[(group, version["name"], plural)] = kmock.ResourceInfo(
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            kind=names["kind"],
            singular=names.get("singular") or names["kind"].lower(),
            verbs=set(DEFAULT_VERBS),
            shortnames=set(names.get("shortNames") or []),
            categories=set(names.get("categories") or []),
            subresources=subresources,
        )
    return result


def _entries(plural: str, info: kmock.ResourceInfo) -> Iterable[dict[str, Any]]:
    yield {
        "name": plural,
        "singularName": info.singular or plural,
        "namespaced": bool(info.namespaced),
        "kind": info.kind or plural.capitalize(),
        "verbs": sorted(info.verbs) or list(DEFAULT_VERBS),
        "shortNames": sorted(info.shortnames),
        "categories": sorted(info.categories),
    }
    for sub in sorted(info.subresources):
        verbs = ["create"] if sub == "token" else ["get", "patch", "update"]
        yield {
            "name": f"{plural}/{sub}",
            "singularName": "",
            "namespaced": bool(info.namespaced),
            "kind": "TokenRequest" if sub == "token" else info.kind or plural.capitalize(),
            "verbs": verbs,
        }


def resource_list(
    group: str, version: str, table: Mapping[ResKey, kmock.ResourceInfo]
) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": [
            entry
            for (g, v, plural), info in table.items()
            if (g, v) == (group, version)
            for entry in _entries(plural, info)
        ],
    }


def groups(table: Mapping[ResKey, kmock.ResourceInfo]) -> dict[str, list[str]]:
    """Non-core groups and their versions, preferred (first registered) first."""
    result: dict[str, list[str]] = {}
    for group, version, _ in table:
        if group and version not in result.setdefault(group, []):
            result[group].append(version)
    return result


def api_group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": listed,
        "preferredVersion": listed[0],
    }


def api_group_list(table: Mapping[ResKey, kmock.ResourceInfo]) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(name, versions) for name, versions in groups(table).items()],
    }


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def root_paths(table: Mapping[ResKey, kmock.ResourceInfo]) -> dict[str, Any]:
    paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/readyz", "/livez"}
    for name, versions in groups(table).items():
        paths.add(f"/apis/{name}")
        paths.update(f"/apis/{name}/{v}" for v in versions)
    return {"paths": sorted(paths)}


SERVER_VERSION: dict[str, str] = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-devcluster",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def openapi_v3_root(table: Mapping[ResKey, kmock.ResourceInfo]) -> dict[str, Any]:
    """The OpenAPI v3 index kubectl reads to learn that the server validates fields itself."""
    gvs = {("api/v1" if not g else f"apis/{g}/{v}") for g, v, _ in table}
    return {
        "paths": {
            gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=devcluster"} for gv in sorted(gvs)
        }
    }


def openapi_v3_group_version(
    group: str, version: str, table: Mapping[ResKey, kmock.ResourceInfo]
) -> dict[str, Any]:
    """Operations only, no schemas: enough for kubectl's `fieldValidation` support check.

    With no schemas kubectl validates nothing client-side and builds strategic merge patches
    from its compiled-in types, as it does against any server without OpenAPI schemas.
    """
    prefix = "/api/v1" if not group else f"/apis/{group}/{version}"
    paths: dict[str, Any] = {}
    for (g, v, plural), info in table.items():
        if (g, v) != (group, version):
            continue
        gvk = {"group": group, "version": version, "kind": info.kind or plural.capitalize()}
        param = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]
        ops = {
            verb: {"x-kubernetes-group-version-kind": gvk, "parameters": param, "responses": {}}
            for verb in ("get", "put", "patch", "delete")
        }
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        paths[f"{prefix}{scope}/{plural}/{{name}}"] = ops
        paths[f"{prefix}{scope}/{plural}"] = {
            "post": {"x-kubernetes-group-version-kind": gvk, "parameters": param, "responses": {}}
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "devcluster", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
