"""A Kubernetes API emulator: kmock 0.8's DSL for fault injection, kube-apiserver's semantics.

kmock 0.8 (pinned) stores objects as plain dicts and replays every request against the whole
request history. This subclass keeps kmock's reaction DSL (`emu['create v1/pods'][1:2] << 500`)
and its `objects` view, but serves the API itself: one global resourceVersion counter, uid,
generation, status as a real subresource, finalizers, garbage collection, selectors, watches
that resume from a resourceVersion, and a request log of bounded size.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import json
import logging
import re
import secrets
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import aiohttp.web
import attrs
import kmock
from kmock._internal import dsl, rendering

from devcluster import authz, discovery, patching, selectors, tables
from devcluster.discovery import CRD_RESOURCE, ResKey
from devcluster.protocol import (
    Access,
    IssuedToken,
    ParsedPath,
    api_error,
    kmock_action,
    now,
    parse_path,
    rbac_verb,
    spec_of,
    status_body,
    timestamp,
    without_rv,
)

logger = logging.getLogger(__name__)

ObjKey = tuple[str | None, str]  # namespace, name
JSON = "application/json"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PRELOADED_NAMESPACES = ("default", "kube-system", "kube-public")
ROOT_CA = "-----BEGIN CERTIFICATE-----\ndevcluster serves plain HTTP\n-----END CERTIFICATE-----\n"
MIN_TOKEN_SECONDS = 600
TOKEN_REVIEWS = ("authentication.k8s.io", "v1", "tokenreviews")


class _Event(NamedTuple):
    rv: int
    resource: ResKey
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None
    lines: dict[str, bytes]  # the encoded line per visible type, shared by all watchers

    def line(self, kind: str) -> bytes:
        encoded = self.lines.get(kind)
        if encoded is None:
            encoded = self.lines[kind] = _encode(kind, self.obj)
        return encoded


def _encode(kind: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


@attrs.define(eq=False)
class _Watcher:
    resource: ResKey
    namespace: str | None
    matches: Callable[[Mapping[str, Any]], bool]
    queue: asyncio.Queue[_Event | None] = attrs.field(factory=asyncio.Queue)


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """The Kubernetes API emulator; serve it with `devcluster.server` or `kmock.Server`.

    Fault injection uses kmock's DSL; a reaction that answers leaves the state untouched::

        emu["create v1/pods"][:1] << kmock.KubernetesError(status=500)
    """

    request_log_size: int = 2_000
    event_window: int = 10_000
    bookmark_interval: float = 1.0

    _rv: int = attrs.field(default=0, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _store: dict[ResKey, dict[ObjKey, dict[str, Any]]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False
    )
    _events: collections.deque[_Event] = attrs.field(init=False)
    _watchers: dict[ResKey, set[_Watcher]] = attrs.field(
        factory=lambda: collections.defaultdict(set), init=False
    )
    _refs: dict[ResKey, kmock.resource] = attrs.field(factory=dict, init=False)
    _infos: dict[ResKey, kmock.ResourceInfo] = attrs.field(factory=dict, init=False)
    _columns: dict[ResKey, tuple[tables.Column, ...]] = attrs.field(
        factory=lambda: dict(tables.BUILTIN_COLUMNS), init=False
    )
    _gc_queue: asyncio.Queue[str] = attrs.field(factory=asyncio.Queue, init=False)
    _gc_task: asyncio.Task[None] | None = attrs.field(default=None, init=False)
    _served: int = attrs.field(default=0, init=False)
    #: Set by ``close_watches()`` when the server shuts down: every watch ends, including
    #: one whose request arrives during the shutdown (the server would wait for it).
    _closing: bool = attrs.field(default=False, init=False)
    access_log: collections.Counter[Access] = attrs.field(factory=collections.Counter, init=False)
    tokens: dict[str, IssuedToken] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        # kmock's own fallback reactions are not registered: this class serves the API itself,
        # so only the user's reactions are matched against requests (and only cheaply).
        self._requests = collections.deque(maxlen=self.request_log_size)  # type: ignore[assignment]
        self._events = collections.deque(maxlen=self.event_window)
        for ref, info in discovery.builtin_resources().items():
            self._resources[ref] = info
        for ns in PRELOADED_NAMESPACES:
            self._create_namespace_defaults(ns, preload=True)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        await super().__aenter__()
        if self._gc_task is None:
            self._gc_task = asyncio.create_task(self._collect_garbage())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.cut_watches()
        if self._gc_task is not None and not self._entered - 1:
            self._gc_task.cancel()
            self._gc_task = None
        await super().__aexit__(*exc)

    # -- public helpers for tests ----------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def requests_served(self) -> int:
        return self._served

    def cut_watches(self) -> int:
        """End every live watch stream, as an apiserver restart or a load balancer would."""
        count = 0
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)
                count += 1
        return count

    def close_watches(self) -> int:
        """End every live watch and every watch started from now on (server shutdown)."""
        self._closing = True
        return self.cut_watches()

    def compact(self) -> None:
        """Forget all past events: any watch resuming from an older resourceVersion gets 410."""
        self._events.clear()
        self._compacted_rv = self._rv

    def stored(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a deep copy), e.g. `emu.stored('v1/pods', 'default', 'p1')`."""
        ref = kmock.resource(resource)
        key = (ref.group or "", ref.version or "", ref.plural or "")
        obj = self._store.get(key, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def seed(
        self, resource: str, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Create an object as a POST would (same rules and events), from the loop's thread."""
        ref = kmock.resource(resource)
        key = (ref.group or "", ref.version or "", ref.plural or "")
        info = self._info(key)
        if info is None:
            raise ValueError(f"resource {resource!r} is not served; apply its CRD first")
        return copy.deepcopy(self._create(key, info, namespace, dict(body), {}))

    def stored_list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        ref = kmock.resource(resource)
        key = (ref.group or "", ref.version or "", ref.plural or "")
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self._store.get(key, {}).items(), key=lambda i: str(i[0]))
            if namespace is None or ns == namespace
        ]

    # -- request entry point ---------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self._served += 1
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await self._parse(raw)
            self._requests.append(request)
            self._authorize(raw)
            try:
                response = await self._react(request)
                return response if response is not None else await self._serve(request, raw)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                raise e.__cause__ or e from None
        except kmock.KubernetesError as e:
            if raw_response is not None and raw_response.prepared:
                return raw_response
            return self._status(e.status, e.reason or "InternalError", e.message or "", e.details)
        except Exception as e:
            logger.exception("devcluster failed to serve %s %s", raw.method, raw.path_qs)
            if self._errors:
                self._errors[-1].append(e)
            if raw_response is not None and raw_response.prepared:
                return raw_response
            message = "".join(traceback.format_exception_only(e)).strip()
            return self._status(500, "InternalError", message)

    async def _parse(self, raw: aiohttp.web.BaseRequest) -> rendering.Request:
        body = await raw.read()
        data: Any = None
        if "protobuf" in raw.headers.get("Content-Type", ""):
            raise api_error(
                415,
                "UnsupportedMediaType",
                "devcluster speaks JSON only; this kubectl command sends protobuf "
                "(use `kubectl apply -f` / `kubectl create -f` with a manifest instead)",
            )
        if body:
            try:
                data = json.loads(body)
            except ValueError as e:
                raise api_error(400, "BadRequest", f"the request body is not JSON: {e}") from e
        params = dict(raw.query)
        parsed = parse_path(raw.path)
        watch = params.get("watch") in ("true", "1")
        if parsed is not None and parsed.plural is not None:
            verb = rbac_verb(raw.method, parsed.name, watch)
            resource = parsed.plural + (f"/{parsed.subresource}" if parsed.subresource else "")
            self.access_log[
                Access(verb, parsed.group, resource, parsed.namespace, parsed.name)
            ] += 1
        return rendering.Request(
            id=self._served - 1,
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=params,
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            data=data,
            body=body,
            text=body.decode("utf-8", "replace"),
            action=kmock_action(raw.method, parsed.name, watch) if parsed else None,
            resource=self._ref((parsed.group, parsed.version, parsed.plural or ""))
            if parsed
            else None,
            namespace=parsed.namespace if parsed else None,
            name=parsed.name if parsed else None,
            subresource=parsed.subresource if parsed else None,
        )

    def _authorize(self, raw: aiohttp.web.BaseRequest) -> None:
        """401/403 for a token this emulator minted; every other caller is let through."""
        scheme, _, bearer = raw.headers.get("Authorization", "").partition(" ")
        token = self.tokens.get(bearer.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return
        bound = None
        if token.bound_kind is not None:
            plural = {"Secret": "secrets", "Pod": "pods"}[token.bound_kind]
            bound = self._store.get(("", "v1", plural), {}).get(
                (token.namespace, token.bound_name or "")
            )
        if authz.unauthenticated_reason(token, now(), bound) is not None:
            raise api_error(401, "Unauthorized", "Unauthorized")
        if not authz.accepted_by_api(token):
            raise api_error(401, "Unauthorized", "Unauthorized")  # another audience's token
        parsed = parse_path(raw.path)
        if parsed is None or parsed.plural is None:
            return  # discovery and non-resource paths: every authenticated user may read them
        watch = raw.query.get("watch") in ("true", "1")
        attributes = authz.Attributes(
            rbac_verb(raw.method, parsed.name, watch),
            parsed.group,
            parsed.plural + (f"/{parsed.subresource}" if parsed.subresource else ""),
            parsed.namespace,
            parsed.name,
        )
        bindings = (
            [
                obj
                for (ns, _), obj in self._store.get(
                    (authz.RBAC_GROUP, "v1", "rolebindings"), {}
                ).items()
                if ns == parsed.namespace
            ]
            if parsed.namespace
            else []
        )
        roles = {
            ("Role", name): obj
            for (ns, name), obj in self._store.get((authz.RBAC_GROUP, "v1", "roles"), {}).items()
            if ns == parsed.namespace
        } | {
            ("ClusterRole", name): obj
            for (_, name), obj in self._store.get(
                (authz.RBAC_GROUP, "v1", "clusterroles"), {}
            ).items()
        }
        if not authz.allowed(attributes, token, bindings, roles):
            raise api_error(
                403,
                "Forbidden",
                authz.forbidden_message(attributes, authz.user_of(token)),
                group=parsed.group,
                kind=parsed.plural,
                **({"name": parsed.name} if parsed.name else {}),
            )

    def _sees(self, view: dsl.View, request: rendering.Request) -> bool:
        """Whether a reaction's view includes this request, without replaying the log.

        Plain filter chains (`emu['create v1/pods']`) are decided on this request alone;
        slices and groups fall back to kmock over the bounded request log.
        """
        node: dsl.View = view
        while True:
            if node is self:
                return True
            if type(node) is dsl.Priority:
                node = node._source
            elif type(node) is dsl.Filter:
                if not node.criteria(request):
                    return False
                node = node._source
            else:
                return request in view

    async def _react(self, request: rendering.Request) -> aiohttp.web.StreamResponse | None:
        """Serve the first user reaction that answers; None leaves the request to the API."""
        if not self._payloads:
            return None
        ordered = sorted(self._payloads, key=lambda p: tuple(-x for x in p.priorities))
        for payload in ordered:
            if payload._disabled.is_set() or not self._sees(payload._source, request):
                continue
            try:
                return await payload(request)
            except rendering.ReactionMismatchError:
                payload._disabled.set()
            except NotImplementedError:
                pass
        return None

    # -- routing -------------------------------------------------------------------------------

    def _status(
        self, code: int, reason: str, message: str, details: Any = None
    ) -> aiohttp.web.Response:
        return aiohttp.web.json_response(status_body(code, reason, message, details), status=code)

    def _table(self) -> dict[ResKey, kmock.ResourceInfo]:
        return {
            (r.group or "", r.version or "", r.plural or ""): self._resources[r]
            for r in self._resources
        }

    def _info(self, key: ResKey) -> kmock.ResourceInfo | None:
        # kmock's ResourcesArray checks keys against a runtime Protocol (slow): cache hits here.
        info = self._infos.get(key)
        if info is None:
            ref = self._ref(key)
            if ref not in self._resources:
                return None
            info = self._infos[key] = self._resources[ref]
        return info

    def _ref(self, key: ResKey) -> kmock.resource:
        ref = self._refs.get(key)
        if ref is None:
            ref = self._refs[key] = kmock.resource(*key)
        return ref

    async def _serve(
        self, request: rendering.Request, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        parsed = parse_path(raw.path)
        if parsed is None:
            return self._discovery(raw.method, raw.path)
        key: ResKey = (parsed.group, parsed.version, parsed.plural or "")
        info = self._info(key)
        if info is None:
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        if bool(info.namespaced) != bool(parsed.namespace) and parsed.name is not None:
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        method, name, sub = raw.method, parsed.name, parsed.subresource
        params = request.params
        if params.get("dryRun") and method in ("PUT", "PATCH", "DELETE"):
            raise api_error(
                400, "BadRequest", "dryRun is emulated for create only; drop --dry-run=server"
            )
        if sub is not None:
            return self._serve_subresource(request, key, info, parsed)
        if key == TOKEN_REVIEWS and method == "POST" and name is None:
            return aiohttp.web.json_response(self._review(request.data), status=201)
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(request, raw, key, info, parsed)
        if method == "GET" and name is None:
            return self._json(key, self._list(key, info, parsed.namespace, params), raw)
        if method == "GET" and name is not None:
            obj = self._fetch(key, info, parsed.namespace, name)
            return self._json(key, obj, raw, single=True)
        if method == "POST" and name is None:
            obj = self._create(key, info, parsed.namespace, request.data, params)
            return aiohttp.web.json_response(obj, status=201)
        if method == "PUT" and name is not None:
            return aiohttp.web.json_response(
                self._update(key, info, parsed.namespace, name, request.data, None)
            )
        if method == "PATCH" and name is not None:
            patched = self._patched(key, info, parsed.namespace, name, request, None)
            return aiohttp.web.json_response(patched)
        if method == "DELETE" and name is not None:
            return aiohttp.web.json_response(
                self._delete(key, info, parsed.namespace, name, request.data)
            )
        if method == "DELETE":
            return aiohttp.web.json_response(self._delete_collection(key, info, parsed, request))
        raise api_error(405, "MethodNotAllowed", f"{method} is not supported on this URL")

    def _serve_subresource(
        self,
        request: rendering.Request,
        key: ResKey,
        info: kmock.ResourceInfo,
        parsed: ParsedPath,
    ) -> aiohttp.web.StreamResponse:
        method, name, sub = request.method.value, parsed.name, parsed.subresource
        if name is None or sub not in info.subresources:
            raise api_error(404, "NotFound", "the server could not find the requested resource")
        if sub == "token" and key == ("", "v1", "serviceaccounts") and method == "POST":
            return aiohttp.web.json_response(
                self._token(parsed.namespace or "", name, request.data), status=201
            )
        if sub == "status":
            if method == "GET":
                return aiohttp.web.json_response(self._fetch(key, info, parsed.namespace, name))
            if method == "PUT":
                return aiohttp.web.json_response(
                    self._update(key, info, parsed.namespace, name, request.data, "status")
                )
            if method == "PATCH":
                return aiohttp.web.json_response(
                    self._patched(key, info, parsed.namespace, name, request, "status")
                )
        raise api_error(405, "MethodNotAllowed", f"{method} is not supported on {sub!r}")

    def _discovery(self, method: str, path: str) -> aiohttp.web.StreamResponse:
        if method != "GET":
            raise api_error(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        parts = [part for part in path.strip("/").split("/") if part]
        table = self._table()
        if parts in ([], ["apis", ""]):
            return aiohttp.web.json_response(discovery.root_paths(table))
        if parts == ["version"]:
            return aiohttp.web.json_response(discovery.SERVER_VERSION)
        if parts and parts[0] in ("healthz", "readyz", "livez"):
            return aiohttp.web.Response(text="ok")
        if parts == ["openapi", "v3"]:
            return aiohttp.web.json_response(discovery.openapi_v3_root(table))
        if parts[:3] == ["openapi", "v3", "api"] and parts[3:] == ["v1"]:
            return aiohttp.web.json_response(discovery.openapi_v3_group_version("", "v1", table))
        if parts[:3] == ["openapi", "v3", "apis"] and len(parts) == 5:
            doc = discovery.openapi_v3_group_version(parts[3], parts[4], table)
            return aiohttp.web.json_response(doc)
        if parts == ["api"]:
            return aiohttp.web.json_response(discovery.api_versions())
        if parts == ["api", "v1"]:
            return aiohttp.web.json_response(discovery.resource_list("", "v1", table))
        if parts == ["apis"]:
            return aiohttp.web.json_response(discovery.api_group_list(table))
        groups = discovery.groups(table)
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return aiohttp.web.json_response(discovery.api_group(parts[1], groups[parts[1]]))
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []):
            return aiohttp.web.json_response(discovery.resource_list(parts[1], parts[2], table))
        raise api_error(404, "NotFound", f"the server could not find the requested resource {path}")

    def _json(
        self,
        key: ResKey,
        payload: dict[str, Any],
        raw: aiohttp.web.BaseRequest,
        *,
        single: bool = False,
    ) -> aiohttp.web.Response:
        """JSON, or a meta.k8s.io Table when kubectl asks for one (`kubectl get`).

        The columns are the kind's own (a CRD's additionalPrinterColumns, the pod printer),
        as kube-apiserver serves them, so `kubectl get` looks as it does on a cluster.
        """
        if "as=Table" not in raw.headers.get("Accept", ""):
            return aiohttp.web.json_response(payload)
        items = [payload] if single else payload["items"]
        rv = payload["metadata"]["resourceVersion"] if single else str(self._rv)
        try:
            table = tables.table(
                items,
                self._columns.get(key, tables.DEFAULT_COLUMNS),
                rv,
                include_object=raw.query.get("includeObject", "Metadata"),
            )
        except ValueError as e:
            raise api_error(400, "BadRequest", str(e)) from e
        return aiohttp.web.json_response(table)

    # -- reads -----------------------------------------------------------------------------------

    def _fetch(
        self, key: ResKey, info: kmock.ResourceInfo, namespace: str | None, name: str
    ) -> dict[str, Any]:
        obj = self._store[key].get((namespace, name))
        if obj is None:
            raise self._not_found(key, info, name)
        return obj

    def _not_found(self, key: ResKey, info: kmock.ResourceInfo, name: str) -> kmock.KubernetesError:
        plural = key[2] + (f".{key[0]}" if key[0] else "")
        return api_error(
            404, "NotFound", f'{plural} "{name}" not found', name=name, group=key[0], kind=key[2]
        )

    def _selection(
        self, params: Mapping[str, str], namespace: str | None, name: str | None = None
    ) -> Callable[[Mapping[str, Any]], bool]:
        try:
            labels = selectors.label_selector(params.get("labelSelector"))
            fields = selectors.field_selector(params.get("fieldSelector"))
        except selectors.SelectorError as e:
            raise api_error(400, "BadRequest", str(e)) from e

        def matches(obj: Mapping[str, Any]) -> bool:
            meta = obj.get("metadata", {})
            return (
                (namespace is None or meta.get("namespace") == namespace)
                and (name is None or meta.get("name") == name)
                and labels(obj)
                and fields(obj)
            )

        return matches

    def _list(
        self,
        key: ResKey,
        info: kmock.ResourceInfo,
        namespace: str | None,
        params: Mapping[str, str],
    ) -> dict[str, Any]:
        matches = self._selection(params, namespace)
        return {
            "kind": f"{info.kind}List",
            "apiVersion": discovery.group_version(key[0], key[1]),
            "metadata": {"resourceVersion": str(self._rv)},
            "items": [obj for obj in self._store[key].values() if matches(obj)],
        }

    # -- writes ----------------------------------------------------------------------------------

    def _commit(
        self,
        key: ResKey,
        kind: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Store a new version (or remove it for DELETED) under the next resourceVersion."""
        self._rv += 1
        meta = new["metadata"] = dict(new["metadata"])
        meta["resourceVersion"] = str(self._rv)
        objkey: ObjKey = (meta.get("namespace"), meta["name"])
        ref = self._ref(key)
        if kind == "DELETED":
            self._store[key].pop(objkey, None)
            if (ref, objkey[0], objkey[1]) in self._objects:
                del self._objects[ref, objkey[0], objkey[1]]
        else:
            self._store[key][objkey] = new
            self._objects[ref, objkey[0], objkey[1]] = new
        if len(self._events) == self._events.maxlen:
            self._compacted_rv = self._events[0].rv
        event = _Event(self._rv, key, kind, new, old, {})
        self._events.append(event)
        for watcher in self._watchers.get(key, ()):
            watcher.queue.put_nowait(event)
        return new

    def _new_name(self, key: ResKey, namespace: str | None, meta: Mapping[str, Any]) -> str:
        name = meta.get("name")
        if name:
            return str(name)
        prefix = meta.get("generateName")
        if not prefix:
            raise api_error(
                422,
                "Invalid",
                "metadata.name: Required value: name or generateName is required",
            )
        for _ in range(100):
            candidate = str(prefix) + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if (namespace, candidate) not in self._store[key]:
                return candidate
        raise api_error(409, "AlreadyExists", f"no free name for generateName {prefix!r}")

    def _create(
        self,
        key: ResKey,
        info: kmock.ResourceInfo,
        namespace: str | None,
        body: Any,
        params: Mapping[str, str],
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "the request body must be a JSON object")
        meta = dict(body.get("metadata") or {})
        if info.namespaced:
            body_ns = meta.get("namespace")
            if namespace is None:
                raise api_error(
                    404, "NotFound", "namespaced resources are created under /namespaces/NS/"
                )
            if body_ns and body_ns != namespace:
                raise api_error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request",
                )
            if (None, namespace) not in self._store[("", "v1", "namespaces")]:
                raise api_error(404, "NotFound", f'namespaces "{namespace}" not found')
        name = self._new_name(key, namespace if info.namespaced else None, meta)
        if not _NAME.match(name):
            raise api_error(
                422,
                "Invalid",
                f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must "
                "consist of lower case alphanumeric characters, '-' or '.'",
            )
        objkey: ObjKey = (namespace if info.namespaced else None, name)
        if objkey in self._store[key]:
            raise api_error(
                409,
                "AlreadyExists",
                f'{key[2]} "{name}" already exists',
                name=name,
                group=key[0],
                kind=key[2],
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"] = discovery.group_version(key[0], key[1])
        obj["kind"] = info.kind
        for field in ("resourceVersion", "deletionTimestamp", "managedFields", "selfLink"):
            meta.pop(field, None)
        meta.update(
            name=name,
            uid=str(uuid.uuid4()),
            creationTimestamp=timestamp(),
            generation=1,
        )
        if info.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["metadata"] = meta
        if "status" in info.subresources:
            obj.pop("status", None)
        if key == CRD_RESOURCE:
            obj = self._register_crd(obj)
        if key == ("", "v1", "namespaces"):
            obj["status"] = {"phase": "Active"}
        if key == ("", "v1", "pods"):
            obj["status"] = {"phase": "Pending"}  # as the apiserver does; no kubelet here
        if params.get("dryRun"):
            return obj
        created = self._commit(key, "ADDED", obj, None)
        if key == ("", "v1", "namespaces"):
            self._create_namespace_defaults(name, preload=False)
        return created

    def _create_namespace_defaults(self, namespace: str, *, preload: bool) -> None:
        """What kube-controller-manager puts in every namespace: a default SA and the root CA."""
        ns_key = ("", "v1", "namespaces")
        if preload:
            self._commit(
                ns_key,
                "ADDED",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": namespace,
                        "uid": str(uuid.uuid4()),
                        "creationTimestamp": timestamp(),
                    },
                    "status": {"phase": "Active"},
                },
                None,
            )
        defaults: tuple[tuple[ResKey, dict[str, Any]], ...] = (
            (("", "v1", "serviceaccounts"), {"apiVersion": "v1", "kind": "ServiceAccount"}),
            (
                ("", "v1", "configmaps"),
                {"apiVersion": "v1", "kind": "ConfigMap", "data": {"ca.crt": ROOT_CA}},
            ),
        )
        for key, obj in defaults:
            name = "default" if key[2] == "serviceaccounts" else "kube-root-ca.crt"
            obj["metadata"] = {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": timestamp(),
            }
            self._commit(key, "ADDED", obj, None)

    def _register_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        try:
            resources = discovery.crd_resources(crd)
            columns = tables.crd_columns(crd)
        except ValueError as e:
            raise api_error(422, "Invalid", f"CustomResourceDefinition: {e}") from e
        for key, info in resources.items():
            self._resources[self._ref(key)] = info
            self._infos[key] = info
        for key in list(self._columns):
            if key[::2] == (crd["spec"]["group"], crd["spec"]["names"]["plural"]):
                del self._columns[key]  # a version no longer served keeps no stale columns
        self._columns.update(columns)
        names = crd["spec"]["names"]
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [
                v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")
            ],
            "conditions": [
                {
                    "type": cond,
                    "status": "True",
                    "reason": reason,
                    "message": "",
                    "lastTransitionTime": timestamp(),
                }
                for cond, reason in (
                    ("NamesAccepted", "NoConflicts"),
                    ("Established", "InitialNamesAccepted"),
                )
            ],
        }
        return crd

    def _unregister_crd(self, crd: Mapping[str, Any]) -> None:
        try:
            resources = discovery.crd_resources(crd)
        except ValueError:
            return
        for key in resources:
            for obj in list(self._store.get(key, {}).values()):
                self._commit(key, "DELETED", obj, obj)
            for watcher in self._watchers.get(key, ()):
                watcher.queue.put_nowait(None)
            ref = self._ref(key)
            self._infos.pop(key, None)
            self._columns.pop(key, None)
            if ref in self._resources:
                del self._resources[ref]

    def _check_precondition(self, body: Any, current: Mapping[str, Any]) -> None:
        wanted = (
            (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        )
        if wanted and str(wanted) != current["metadata"]["resourceVersion"]:
            name = current["metadata"]["name"]
            raise api_error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                name=name,
            )

    def _update(
        self,
        key: ResKey,
        info: kmock.ResourceInfo,
        namespace: str | None,
        name: str,
        body: Any,
        sub: str | None,
    ) -> dict[str, Any]:
        current = self._fetch(key, info, namespace, name)
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "the request body must be a JSON object")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise api_error(400, "BadRequest", "metadata.name does not match the name in the URL")
        self._check_precondition(body, current)
        return self._replace(key, info, current, copy.deepcopy(body), sub)

    def _patched(
        self,
        key: ResKey,
        info: kmock.ResourceInfo,
        namespace: str | None,
        name: str,
        request: rendering.Request,
        sub: str | None,
    ) -> dict[str, Any]:
        current = self._fetch(key, info, namespace, name)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch = request.data
        try:
            if ctype == "application/json-patch+json":
                candidate = patching.json_patch(current, patch)
            elif ctype in ("application/merge-patch+json", JSON):
                self._check_precondition(patch, current)
                candidate = patching.merge_patch(current, patch)
            elif ctype == "application/strategic-merge-patch+json":
                if self._is_custom(key):
                    raise api_error(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; "
                        "use a JSON merge patch (kubectl patch --type=merge)",
                    )
                self._check_precondition(patch, current)
                candidate = patching.strategic_merge_patch(current, patch)
            else:
                raise api_error(
                    415,
                    "UnsupportedMediaType",
                    f"the patch content type {ctype!r} is not supported (server-side apply is not "
                    "emulated; use json-patch, merge-patch or strategic-merge-patch)",
                )
        except patching.PatchError as e:
            reason = "Invalid" if e.code == 422 else "BadRequest"
            raise api_error(e.code, reason, str(e)) from e
        if not isinstance(candidate, dict):
            raise api_error(422, "Invalid", "the patch must leave an object")
        return self._replace(key, info, current, candidate, sub)

    def _is_custom(self, key: ResKey) -> bool:
        crds = self._store.get(CRD_RESOURCE, {})
        return (None, f"{key[2]}.{key[0]}") in crds

    def _replace(
        self,
        key: ResKey,
        info: kmock.ResourceInfo,
        current: dict[str, Any],
        candidate: dict[str, Any],
        sub: str | None,
    ) -> dict[str, Any]:
        """Apply API-server rules to a candidate version, then commit it if anything changed."""
        old_meta = current["metadata"]
        if sub == "status":
            new = {**current, "metadata": dict(old_meta)}
            if candidate.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = candidate["status"]
        else:
            meta = dict(candidate.get("metadata") or {})
            for field in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            new = {**candidate, "metadata": meta}
            new["kind"], new["apiVersion"] = current["kind"], current["apiVersion"]
            if "status" in info.subresources:
                if "status" in current:
                    new["status"] = current["status"]
                else:
                    new.pop("status", None)
            generation = int(old_meta.get("generation", 1))
            meta["generation"] = generation + (spec_of(new) != spec_of(current))
        if without_rv(new) == without_rv(current):
            return current
        if key == CRD_RESOURCE:
            new = self._register_crd(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._remove(key, new, current)
        return self._commit(key, "MODIFIED", new, current)

    def _remove(
        self, key: ResKey, last: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        removed = self._commit(key, "DELETED", last, current)
        meta = removed["metadata"]
        self._gc_queue.put_nowait(meta["uid"])
        if key == CRD_RESOURCE:
            self._unregister_crd(removed)
        if key == ("", "v1", "namespaces"):
            for other, objects in list(self._store.items()):
                for (ns, _name), obj in list(objects.items()):
                    if ns == meta["name"]:
                        self._delete_object(other, obj, None)
        return removed

    def _delete_object(self, key: ResKey, current: dict[str, Any], options: Any) -> dict[str, Any]:
        meta = current["metadata"]
        if isinstance(options, dict):
            pre = options.get("preconditions") or {}
            for field in ("uid", "resourceVersion"):
                if pre.get(field) and str(pre[field]) != str(meta.get(field)):
                    raise api_error(
                        409,
                        "Conflict",
                        f"Precondition failed: {field} in precondition: {pre[field]}, "
                        f"{field} in object meta: {meta.get(field)}",
                    )
        if meta.get("deletionTimestamp"):
            return current
        if meta.get("finalizers"):
            new = {
                **current,
                "metadata": {
                    **meta,
                    "deletionTimestamp": timestamp(),
                    "deletionGracePeriodSeconds": 0,
                },
            }
            return self._commit(key, "MODIFIED", new, current)
        return self._remove(key, current, current)

    def _delete(
        self,
        key: ResKey,
        info: kmock.ResourceInfo,
        namespace: str | None,
        name: str,
        options: Any,
    ) -> dict[str, Any]:
        current = self._fetch(key, info, namespace, name)
        return self._delete_object(key, current, options)

    def _delete_collection(
        self, key: ResKey, info: kmock.ResourceInfo, parsed: ParsedPath, request: rendering.Request
    ) -> dict[str, Any]:
        listed = self._list(key, info, parsed.namespace, request.params)
        deleted = [self._delete_object(key, obj, request.data) for obj in listed["items"]]
        return {**listed, "metadata": {"resourceVersion": str(self._rv)}, "items": deleted}

    async def _collect_garbage(self) -> None:
        """Background GC: delete objects whose ownerReferences name a removed uid."""
        while True:
            uid = await self._gc_queue.get()
            for key, objects in list(self._store.items()):
                for obj in list(objects.values()):
                    owners = obj["metadata"].get("ownerReferences") or []
                    if not any(owner.get("uid") == uid for owner in owners):
                        continue
                    try:
                        self._delete_object(key, obj, None)
                    except Exception:  # one bad object must not stop the collector
                        logger.exception("devcluster GC failed to delete %s", obj["metadata"])

    def _token(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """TokenRequest: an opaque token bound to a ServiceAccount and optionally an object."""
        sa_key = ("", "v1", "serviceaccounts")
        if (namespace, name) not in self._store[sa_key]:
            raise api_error(404, "NotFound", f'serviceaccounts "{name}" not found', name=name)
        spec = dict((body or {}).get("spec") or {}) if isinstance(body, dict) else {}
        seconds = int(spec.get("expirationSeconds") or 3600)
        if seconds < MIN_TOKEN_SECONDS:
            raise api_error(
                422,
                "Invalid",
                f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration "
                "less than 10 minutes",
            )
        bound = spec.get("boundObjectRef") or {}
        bound_uid = None
        if bound:
            plural = {"Secret": "secrets", "Pod": "pods"}.get(bound.get("kind", ""))
            if plural is None:
                raise api_error(
                    422, "Invalid", "spec.boundObjectRef.kind: Unsupported value; use Secret or Pod"
                )
            target = self._store[("", "v1", plural)].get((namespace, bound.get("name", "")))
            if target is None:
                raise api_error(404, "NotFound", f'{plural} "{bound.get("name")}" not found')
            if bound.get("uid") and bound["uid"] != target["metadata"]["uid"]:
                raise api_error(
                    409, "Conflict", "spec.boundObjectRef.uid does not match the object"
                )
            bound_uid = target["metadata"]["uid"]
        token = "devcluster." + secrets.token_urlsafe(32)
        expires = now() + datetime.timedelta(seconds=seconds)
        self.tokens[token] = IssuedToken(
            namespace,
            name,
            tuple(spec.get("audiences") or ()),
            expires,
            bound.get("kind"),
            bound.get("name"),
            bound_uid,
        )
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": timestamp()},
            "spec": {**spec, "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": timestamp(expires)},
        }

    def _bound_object(self, token: IssuedToken) -> dict[str, Any] | None:
        if token.bound_kind is None:
            return None
        plural = {"Secret": "secrets", "Pod": "pods"}[token.bound_kind]
        return self._store.get(("", "v1", plural), {}).get(
            (token.namespace, token.bound_name or "")
        )

    def _review(self, body: Any) -> dict[str, Any]:
        """TokenReview: who a bearer token is, for the audiences asked (never stored)."""
        spec = (body or {}).get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("token"), str):
            raise api_error(422, "Invalid", "spec.token: Required value")
        token = self.tokens.get(spec["token"])
        bound = self._bound_object(token) if token is not None else None
        status = authz.review_status(token, spec.get("audiences") or (), now(), bound)
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }

    # -- watch -----------------------------------------------------------------------------------

    def _visible(self, event: _Event, matches: Callable[[Mapping[str, Any]], bool]) -> str | None:
        """The event type this watcher sees: objects entering or leaving a selection."""
        if event.type == "DELETED":
            return "DELETED" if matches(event.obj) else None
        after = matches(event.obj)
        before = event.old is not None and matches(event.old)
        if after:
            return "MODIFIED" if before else "ADDED"
        return "DELETED" if before else None

    def _initial(
        self, key: ResKey, matches: Callable[[Mapping[str, Any]], bool], since: str | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if since in (None, "", "0"):
            for obj in list(self._store[key].values()):
                if matches(obj):
                    yield "ADDED", obj
            return
        for event in list(self._events):
            if event.rv > int(since or 0) and event.resource == key:
                kind = self._visible(event, matches)
                if kind is not None:
                    yield kind, event.obj

    async def _watch(
        self,
        request: rendering.Request,
        raw: aiohttp.web.BaseRequest,
        key: ResKey,
        info: kmock.ResourceInfo,
        parsed: ParsedPath,
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        matches = self._selection(params, parsed.namespace, parsed.name)
        since = params.get("resourceVersion")
        initial_events = params.get("sendInitialEvents") == "true"
        if initial_events:
            since = None
        if since not in (None, "", "0") and not str(since).isdigit():
            raise api_error(400, "BadRequest", f"resourceVersion {since!r} is not a number")
        bookmarks = params.get("allowWatchBookmarks") == "true"
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = time.monotonic() + timeout if timeout is not None else None

        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": JSON})
        # The snapshot and the subscription happen with no await in between: no event is lost.
        gone = since not in (None, "", "0") and int(since or 0) < self._compacted_rv
        initial = [] if gone else list(self._initial(key, matches, since))
        watcher = _Watcher(key, parsed.namespace, matches)
        self._watchers[key].add(watcher)
        kind_name = info.kind or ""
        api_version = discovery.group_version(key[0], key[1])

        async def send(kind: str, obj: Mapping[str, Any]) -> None:
            await response.write(_encode(kind, obj))

        def bookmark(annotations: dict[str, str] | None = None) -> dict[str, Any]:
            meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
            if annotations:
                meta["annotations"] = annotations
            return {"kind": kind_name, "apiVersion": api_version, "metadata": meta}

        try:
            await response.prepare(raw)
            if gone:
                await send(
                    "ERROR",
                    status_body(
                        410, "Expired", f"too old resource version: {since} ({self._compacted_rv})"
                    ),
                )
                return response
            for kind, obj in initial:
                await send(kind, obj)
            if initial_events and bookmarks:
                await send("BOOKMARK", bookmark({"k8s.io/initial-events-end": "true"}))
            next_bookmark = time.monotonic() + self.bookmark_interval
            while (
                not self._closing and raw.transport is not None and not raw.transport.is_closing()
            ):
                # Wake up at least every second: aiohttp does not cancel the handler when the
                # client goes away, and a stream nobody reads must not pin the server.
                moment = time.monotonic()
                wait = min(1.0, max(next_bookmark - moment, 0.0)) if bookmarks else 1.0
                if deadline is not None:
                    if deadline <= moment:
                        break
                    wait = min(wait, deadline - moment)
                try:
                    if watcher.queue.empty():
                        event = await asyncio.wait_for(watcher.queue.get(), wait)
                    else:
                        event = watcher.queue.get_nowait()
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark and watcher.queue.empty():
                        await send("BOOKMARK", bookmark())
                        next_bookmark = time.monotonic() + self.bookmark_interval
                    continue
                # Drain what is already queued into one write: one syscall per burst.
                batch = [event]
                while batch[-1] is not None and not watcher.queue.empty():
                    batch.append(watcher.queue.get_nowait())
                lines = [
                    item.line(visible)
                    for item in batch
                    if item is not None
                    for visible in [self._visible(item, matches)]
                    if visible is not None
                ]
                if lines:
                    await response.write(b"".join(lines))
                if batch[-1] is None:
                    break
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; nothing to tell it
        finally:
            self._watchers[key].discard(watcher)
        return response
