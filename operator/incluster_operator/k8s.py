"""Every Kubernetes API call the operator makes, with the official (synchronous) client.

Why one module: the reconcile round stays a thin loop around pure decisions, the request
pattern (how many writes an experiment costs) is visible in one place, and every failure
mode of the API is translated here into three outcomes the reconcile round understands:
done, retry later (``RETRYABLE``: any ``ApiException`` or connection error not listed
below), or a permanent problem (``ChildConflict``, ``Rejected``) that becomes a ``Failed``
status instead of a retry loop.

Reads ask for the raw JSON (``_preload_content=False``): the client's model classes
cost about a millisecond per pod to build and the rules in ``status.py`` want plain
dicts anyway.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

import urllib3
from incluster import contract
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from incluster_operator.api import names
from incluster_operator.api.models import API_VERSION, GROUP, KIND, PLURAL, VERSION
from incluster_operator.api.times import format_time
from incluster_operator.render.context import ExperimentMeta
from incluster_operator.status import KUEUE_RETRIABLE_ANNOTATION, Decision, Event

logger = logging.getLogger(__name__)

#: Written into every Event's ``source``/``reportingComponent``.
COMPONENT = "incluster-operator"
#: Connections kept open to the API server; reconcile rounds run in a small thread pool.
POOL_SIZE = 16
#: Pod creates in flight per experiment.
CREATE_CONCURRENCY = 8


class Superseded(Exception):
    """A child's name is held by a child of an earlier Experiment of the same name.

    That Experiment is deleted (two cannot share a name) and the garbage collector has
    not removed its children yet: a delete and re-create is faster than it. The leftover
    is deleted and the round retried, so a re-created Experiment starts its own run.
    """


#: Errors worth retrying: the API answered with an error, or could not be reached.
RETRYABLE: Final = (ApiException, urllib3.exceptions.HTTPError, OSError, Superseded)


class ChildConflict(Exception):
    """A child's name is taken by an object this experiment does not own.

    Retrying cannot help: the message names the object and the two ways out.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Rejected(Exception):
    """The API server refused a rendered object as invalid (HTTP 400 or 422).

    The object came from the user's pod template, so this is a spec problem to report,
    not an outage to retry.
    """


@dataclass(frozen=True)
class Api:
    """One API connection and the typed API groups the operator uses."""

    client: k8s.ApiClient
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi

    def close(self) -> None:
        cast(Any, self.client).close()


def load_configuration(environ: Mapping[str, str] | None = None) -> k8s.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig in ``KUBECONFIG``.

    ``environ`` is read at call time (not at import time, as the client's own default
    does), so a test or the dev cluster can point the operator at its API server.
    """
    env = os.environ if environ is None else environ
    configuration = k8s.Configuration()
    if env.get("KUBERNETES_SERVICE_HOST"):
        cast(Any, k8s_config).load_incluster_config(client_configuration=configuration)
    else:
        path = env.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        cast(Any, k8s_config).load_kube_config(
            config_file=path.split(os.pathsep)[0], client_configuration=configuration
        )
    configuration.connection_pool_maxsize = POOL_SIZE
    return configuration


def connect(configuration: k8s.Configuration) -> Api:
    """An ``Api`` over one connection pool, shared by all handler threads."""
    client = k8s.ApiClient(configuration)
    return Api(
        client=client,
        core=k8s.CoreV1Api(client),
        custom=k8s.CustomObjectsApi(client),
    )


def _json(response: Any) -> dict[str, Any]:
    """The body of a ``_preload_content=False`` response."""
    data: dict[str, Any] = json.loads(response.data)
    return data


def _reason(exc: ApiException) -> str:
    """The API server's own message (a Status object) or the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"HTTP {exc.status} {exc.reason}"


# -- children: create, or adopt what an earlier run of the operator created ------------------


#: Where each child kind lives: its namespaced collection.
COLLECTIONS = {
    "Pod": "/api/v1/namespaces/{namespace}/pods",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
    # Gang schedulers' PodGroups share a kind: keyed by apiVersion/kind.
    "scheduling.x-k8s.io/v1alpha1/PodGroup": (
        "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{namespace}/podgroups"
    ),
    "scheduling.volcano.sh/v1beta1/PodGroup": (
        "/apis/scheduling.volcano.sh/v1beta1/namespaces/{namespace}/podgroups"
    ),
}


def collection(obj: Mapping[str, Any]) -> str:
    """The collection path of a child object (by kind, or apiVersion/kind if shared)."""
    kind = str(obj["kind"])
    path = COLLECTIONS.get(f"{obj.get('apiVersion')}/{kind}") or COLLECTIONS[kind]
    return path.format(namespace=obj["metadata"]["namespace"])


def _request(api: Api, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One call with a plain JSON body, judged by the API server alone.

    The client's typed methods validate bodies against its own models first and refuse
    any field they do not know: a pod template using a field newer than the client (or
    misspelt) would raise a pydantic error instead of the API server's answer, and the
    API server is what decides (and names the field) in a real cluster.
    """
    client: Any = api.client
    serialized = client.param_serialize(
        method=method,
        resource_path=path,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = client.call_api(*serialized)
    response.read()
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)
    return _json(response)


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether ``obj`` names the experiment with ``owner_uid`` among its owners."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid for ref in refs)


def _left_by_predecessor(existing: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    """Whether ``existing`` is owned by an Experiment of the name that owns ``ours``
    (another uid: an earlier, deleted one; names of live objects are unique)."""
    mine = {
        (ref.get("kind"), ref.get("name"))
        for ref in (ours.get("metadata") or {}).get("ownerReferences") or []
        if ref.get("kind") == KIND
    }
    theirs = (existing.get("metadata") or {}).get("ownerReferences") or []
    return any((ref.get("kind"), ref.get("name")) in mine for ref in theirs)


def ensure(api: Api, obj: Mapping[str, Any], owner_uid: str) -> bool:
    """Create ``obj`` unless it exists already; True when this call created it.

    409 means "read and verify", never "fail": after an operator restart every child of
    a running experiment already exists, and the deterministic render gives it the same
    name. An existing object owned by this experiment is adopted as it is; one owned by
    someone else raises ``ChildConflict``, except a leftover of an earlier Experiment of the
    same name, which is deleted (``Superseded``, retried); 400/422 raise ``Rejected``.
    """
    metadata = obj["metadata"]
    namespace, name, kind = metadata["namespace"], metadata["name"], obj["kind"]
    path = collection(obj)
    try:
        _request(api, "POST", path, dict(obj))
    except ApiException as exc:
        if exc.status in (400, 422):
            raise Rejected(f"the API server rejected {kind} {name}: {_reason(exc)}") from None
        if exc.status == 403 and "PriorityClass" in _reason(exc):
            # The Priority admission plugin refuses an unknown class with 403, unlike an
            # RBAC denial or a full quota (both worth retrying): a spec problem.
            raise Rejected(f"the API server rejected {kind} {name}: {_reason(exc)}") from None
        if exc.status == 404 and kind == "PodGroup":
            raise Rejected(
                f"cannot create {kind} {name}: the API server does not serve "
                f"{obj['apiVersion']} PodGroups; install that gang scheduler (its CRDs) or "
                "remove spec.schedulingPolicy.scheduler"
            ) from None
        if exc.status != 409:
            raise
    else:
        return True
    # 409 AlreadyExists. A read that finds nothing means the object is being deleted (or an
    # injected error lied): the ApiException makes the caller retry later.
    existing = _request(api, "GET", f"{path}/{name}")
    if not owned_by(existing, owner_uid) and _left_by_predecessor(existing, obj):
        uid = (existing.get("metadata") or {}).get("uid")
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            **({"preconditions": {"uid": uid}} if uid else {}),
        }
        try:
            _request(api, "DELETE", f"{path}/{name}", options)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        raise Superseded(
            f"{kind} {namespace}/{name} belonged to an earlier Experiment of this name "
            "(deleted, its children not yet collected); removed it, creating ours next"
        )
    if not owned_by(existing, owner_uid):
        raise ChildConflict(
            kind,
            f"{kind} {namespace}/{name} already exists and does not belong to this experiment "
            f"(uid {owner_uid}); delete that {kind} or rename the experiment",
        )
    return False


# -- the experiment ------------------------------------------------------------------------


def read_experiment(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    """The Experiment as stored now, or None when it is gone."""
    try:
        response = api.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return _json(response)


def read_pod(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    """One pod as stored now, or None when it is gone (the report API checks its caller)."""
    try:
        response = api.core.read_namespaced_pod(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return _json(response)


def token_review(api: Api, token: str, audience: str) -> dict[str, Any]:
    """Ask the API server who a bearer token belongs to, for ``audience`` only.

    The review is the API server's judgement of signature, expiry, audience and bound
    object (a pod-bound token stops working when its pod is deleted).
    """
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [audience]},
    }
    return _request(api, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body)


def read_run_spec(api: Api, meta: ExperimentMeta) -> dict[str, Any] | None:
    """The spec this run started with (its context ConfigMap's ``spec.json``); None if no
    run has started (no ConfigMap of this experiment, or one without the key)."""
    path = COLLECTIONS["ConfigMap"].format(namespace=meta.namespace)
    try:
        found = _request(api, "GET", f"{path}/{names.context_configmap_name(meta.name)}")
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    if not owned_by(found, meta.uid):
        return None  # someone else's: ``ensure`` reports the conflict
    text = (found.get("data") or {}).get(contract.FILE_RUN_SPEC)
    try:
        spec = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def list_pods(api: Api, meta: ExperimentMeta) -> list[dict[str, Any]]:
    """The experiment's pods, selected by its name and uid labels."""
    response = api.core.list_namespaced_pod(
        meta.namespace,
        label_selector=names.label_selector(meta.name, meta.uid),
        _preload_content=False,
    )
    items: list[dict[str, Any]] = _json(response).get("items") or []
    return items


def status_changed(patch: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether merging ``patch`` into ``current`` would change anything.

    Skipping no-op patches is what keeps the writes per experiment at R + a constant:
    most pod events change nothing the status shows.
    """
    current = current or {}
    return any(current.get(key) != value for key, value in patch.items())


def patch_status(api: Api, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
    """A JSON merge patch through the ``/status`` subresource (spec stays untouched)."""
    api.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {"status": dict(patch)},
        _preload_content=False,
    )


def delete_experiment(api: Api, meta: ExperimentMeta) -> None:
    """Delete the experiment itself (TTL expired); its children follow by owner reference.

    The uid precondition keeps a new experiment of the same name safe.
    """
    try:
        api.custom.delete_namespaced_custom_object(
            GROUP,
            VERSION,
            meta.namespace,
            PLURAL,
            meta.name,
            body=k8s.V1DeleteOptions(
                preconditions=k8s.V1Preconditions(uid=meta.uid), propagation_policy="Background"
            ),
            _preload_content=False,
        )
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise


def delete_pod(api: Api, namespace: str, name: str, uid: str | None) -> None:
    """Delete one pod; with its uid as precondition, a replacement is never hit."""
    body = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid) if uid else None)
    try:
        api.core.delete_namespaced_pod(name, namespace, body=body, _preload_content=False)
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise


def annotate_pod(api: Api, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
    """Merge annotations into a pod (a pod already gone needs none)."""
    try:
        api.core.patch_namespaced_pod(
            name,
            namespace,
            {"metadata": {"annotations": dict(annotations)}},
            _preload_content=False,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def post_event(api: Api, meta: ExperimentMeta, event: Event, now: datetime) -> None:
    """A core/v1 Event on the Experiment (what ``kubectl describe xp`` lists).

    Best effort: a lost Event must not undo or repeat the transition it reports.
    """
    stamp = format_time(now)
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.name}.{time.time_ns():x}", "namespace": meta.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
    }
    try:
        api.core.create_namespaced_event(meta.namespace, cast(Any, body), _preload_content=False)
    except ApiException as exc:
        logger.warning("could not post event %s on %s: %s", event.reason, meta.key, exc.status)


def apply_pods(
    api: Api,
    meta: ExperimentMeta,
    decision: Decision,
    pods: Iterable[Mapping[str, Any]],
    render: Callable[[str, int], dict[str, Any]],
) -> None:
    """Delete and create the pods a decision lists; ``render(type, index)`` gives a manifest."""
    uids = {
        (pod.get("metadata") or {}).get("name"): (pod.get("metadata") or {}).get("uid")
        for pod in pods
    }
    for name in decision.release_group:
        annotate_pod(api, meta.namespace, name, {KUEUE_RETRIABLE_ANNOTATION: "false"})
    for name in decision.delete:
        delete_pod(api, meta.namespace, name, uids.get(name))
    manifests = [render(task_type, index) for task_type, index in decision.create]
    if len(manifests) <= 1:
        for manifest in manifests:
            ensure(api, manifest, meta.uid)
        return
    # Creates are latency-bound: keep a few in flight (the Job controller batches too).
    with ThreadPoolExecutor(min(CREATE_CONCURRENCY, len(manifests))) as pool:
        futures = [pool.submit(ensure, api, manifest, meta.uid) for manifest in manifests]
    for future in futures:
        future.result()  # the first failure, after every create has been tried


def apply(
    api: Api,
    meta: ExperimentMeta,
    decision: Decision,
    current_status: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]],
    render: Callable[[str, int], dict[str, Any]],
    now: datetime,
) -> None:
    """Execute a ``status.Decision``: pods, then status, then events, then TTL deletion.

    Pods come first so the status never claims pods that failed to be created; the
    status comes before the events so a retry after a crash re-derives the same events
    only if the status did not land.
    """
    apply_pods(api, meta, decision, pods, render)
    patch = decision.status_patch()
    if status_changed(patch, current_status):
        patch_status(api, meta.namespace, meta.name, patch)
    for event in decision.events:
        post_event(api, meta, event, now)
    if decision.delete_experiment:
        delete_experiment(api, meta)
