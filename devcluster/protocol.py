"""What the Kubernetes HTTP API says, as pure functions: paths, verbs, Status bodies, times.

Kept apart from the emulator's state so each rule can be read (and tested) on its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple

import kmock


class Access(NamedTuple):
    """One API call as RBAC sees it: compare a run's accesses with the operator's Role."""

    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    namespace: str | None
    name: str | None


class IssuedToken(NamedTuple):
    namespace: str
    service_account: str
    audiences: tuple[str, ...]
    expires: datetime.datetime
    bound_kind: str | None
    bound_name: str | None
    bound_uid: str | None = None


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0)


def timestamp(moment: datetime.datetime | None = None) -> str:
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details or {})


def status_body(code: int, reason: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that bumps `generation` when it changes: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def without_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


class ParsedPath(NamedTuple):
    group: str
    version: str
    plural: str | None
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> ParsedPath | None:
    """Split a resource URL; None for discovery and non-resource paths.

    Unlike kmock 0.8's parser this handles `/api/v1/namespaces` and `/api/v1/namespaces/x`.
    """
    parts = [part for part in path.strip("/").split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    return ParsedPath(
        group,
        version,
        rest[0],
        namespace,
        rest[1] if len(rest) > 1 else None,
        "/".join(rest[2:]) or None,
    )


def kmock_action(method: str, name: str | None, watch: bool) -> kmock.action | None:
    if method == "GET":
        return kmock.action.WATCH if watch else kmock.action.FETCH if name else kmock.action.LIST
    return {
        "POST": kmock.action.CREATE,
        "PATCH": kmock.action.UPDATE,
        "PUT": kmock.action.UPDATE,
        "DELETE": kmock.action.DELETE,
    }.get(method)


def rbac_verb(method: str, name: str | None, watch: bool) -> str:
    if method == "GET":
        return "watch" if watch else "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
