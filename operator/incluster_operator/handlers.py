"""Thin kopf handlers: one reconcile loop per Experiment, woken by its pods' events.

Why a daemon per experiment rather than create/update handlers: the status is a function
of the pods (``status.reconcile``), so the handler that matters is "something changed,
look again". A daemon gives each experiment exactly one loop, so two pod events never
race on the same status, bursts of events coalesce into one look, and deadlines and TTLs
become timed wake-ups of that loop. kopf starts the daemon for new experiments and, after
an operator restart, for existing ones: that is create and resume in one code path, made
idempotent by the deterministic render (same names) and ``k8s.ensure`` (409 -> adopt).

Pods are followed through a kopf event handler filtered on the experiment label; it does
no I/O, it only wakes the owning experiment's loop. Every API call lives in ``k8s``;
every rule lives in ``status``; this module only wires them together. The ``kubernetes``
client is synchronous, so each reconcile runs in a worker thread and the event loop
never blocks.

``admit`` is the pure entry (spec -> children, or a ``Failed`` decision), which the
property-based tests exercise without an API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import kopf
import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from incluster_operator import k8s, status, tokens
from incluster_operator.api import names
from incluster_operator.api.models import GROUP, PLURAL, VERSION, ExperimentSpec
from incluster_operator.api.validation import InvalidSpec, validate
from incluster_operator.render import (
    ExperimentMeta,
    access,
    owner_reference,
    plan,
    render_config_map,
    render_service,
)
from incluster_operator.render.pods import render_pod, replica_keys
from incluster_operator.settings import Settings, SettingsError, from_env

logger = logging.getLogger(__name__)

#: kopf's finalizer on Experiments (it stops the loop before the Experiment goes away).
FINALIZER: Final = "incluster.dev/operator"
#: Look again at least this often even without events (a safety net for lost events).
RESYNC_SECONDS: Final = 60.0
#: Backoff after a failed API call: doubles from the first value up to the second.
RETRY_SECONDS: Final = (0.2, 30.0)
#: How often the token timer looks at an experiment's token (refreshes happen far less often:
#: at half of a lifetime of at least 600 s, ``tokens.refresh_at``).
TOKEN_CHECK_SECONDS: Final = 60.0
#: Errors worth retrying: the API answered with an error, or could not be reached.
RETRYABLE: Final = (ApiException, urllib3.exceptions.HTTPError, OSError)


# -- the pure entry --------------------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """A valid experiment's objects: children in creation order, and its pods by replica."""

    spec: ExperimentSpec
    meta: ExperimentMeta
    children: tuple[dict[str, Any], ...]
    pods: Mapping[tuple[str, int], dict[str, Any]]

    def render(self, task_type: str, index: int) -> dict[str, Any]:
        """A missing pod's manifest (``k8s.apply`` creates the ones a decision lists)."""
        return self.pods[(task_type, index)]


def meta_of(body: Mapping[str, Any]) -> ExperimentMeta:
    """The metadata children depend on, from an Experiment as the API returns it."""
    metadata = body.get("metadata") or {}
    return ExperimentMeta(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=str(metadata.get("uid", "")),
    )


def _owned(obj: dict[str, Any], meta: ExperimentMeta) -> dict[str, Any]:
    """``obj`` with this experiment's labels and owner reference (deleted with it)."""
    metadata = obj["metadata"]
    metadata["labels"] = {
        **metadata.get("labels", {}),
        **names.selector(meta.name, meta.uid),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }
    metadata["ownerReferences"] = [owner_reference(meta)]
    return obj


def access_objects(spec: ExperimentSpec, meta: ExperimentMeta) -> tuple[dict[str, Any], ...]:
    """The scoped identity: ServiceAccount, Role, RoleBinding and the (empty) token Secret.

    The Role may read the experiments whose outputs this one mounts: a reference's last
    part is that experiment's name.
    """
    refs = [ref.rsplit("/", 1)[-1] for ref in spec.outputs_refs.experiments]
    return tuple(
        _owned(obj, meta)
        for obj in (
            access.service_account(meta.name, meta.namespace),
            access.role(meta.name, meta.namespace, refs),
            access.role_binding(meta.name, meta.namespace),
            access.token_secret(meta.name, meta.namespace),
        )
    )


def with_token_files(pod: dict[str, Any], experiment: str) -> dict[str, Any]:
    """The pod with the token and CA projected into its context volume.

    One projected volume (context ConfigMap + token Secret + CA) instead of a second
    volume mounted inside the first: the kubelet mounts ConfigMap volumes read-only, so
    it could not create the nested mount point.
    """
    volumes = pod["spec"]["volumes"]
    for i, volume in enumerate(volumes):
        if volume.get("name") == names.VOLUME_CONTEXT and "configMap" in volume:
            sources = [{"configMap": volume["configMap"]}, *access.token_sources(experiment)]
            volumes[i] = {"name": names.VOLUME_CONTEXT, "projected": {"sources": sources}}
    return pod


def desired(body: Mapping[str, Any], settings: Settings) -> Desired:
    """Validate and render everything; raises ``InvalidSpec`` and nothing else."""
    meta = meta_of(body)
    spec = validate(body.get("spec"), meta.name, settings)
    p = plan(spec, meta, settings)
    pods = {key: with_token_files(render_pod(p, *key), meta.name) for key in replica_keys(p)}
    return Desired(
        spec=spec,
        meta=meta,
        children=(render_service(p), render_config_map(p), *access_objects(spec, meta)),
        pods=pods,
    )


def admit(body: Mapping[str, Any], settings: Settings, now: datetime) -> Desired | status.Decision:
    """The experiment's children, or the ``Failed``/``InvalidSpec`` decision that replaces them.

    Never raises for any spec: a malformed Experiment is an answer (a status naming the
    field and the fix), not an exception that kopf would retry forever.
    """
    try:
        return desired(body, settings)
    except InvalidSpec as problem:
        metadata = body.get("metadata") or {}
        generation = metadata.get("generation")
        return status.invalid(
            problem,
            body.get("status") if isinstance(body.get("status"), Mapping) else None,
            now,
            generation if isinstance(generation, int) else None,
        )


def blocked(
    previous: Mapping[str, Any] | None, reason: str, message: str, now: datetime
) -> status.Decision:
    """``Failed`` for a problem found while creating children (a name taken, a rejected pod).

    Like ``status.invalid`` it is idempotent: the same problem keeps its transition time
    and posts no second event.
    """
    prev = status.previous_status(previous)
    same = any(c.type == "Failed" and c.message == message for c in prev.conditions)
    conditions = status.set_condition(prev.conditions, "Failed", True, reason, message, now)
    finished = prev.model_copy(
        update={
            "phase": "Failed",
            "conditions": conditions,
            "completion_time": prev.completion_time or status.format_time(now),
        }
    )
    events = () if same else (status.Event("Warning", reason, message),)
    return status.Decision(status=finished, events=events)


# -- one reconcile (synchronous: runs in a worker thread) ------------------------------------


@dataclass
class Runtime:
    """What every handler shares: the API connection, the settings, the loops' wake-ups."""

    api: k8s.Api
    settings: Settings
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """The outcome of one reconcile: stop looping, or when to look again."""

    done: bool
    requeue_after: float | None = None


@dataclass
class Progress:
    """What one experiment's loop has achieved; survives failed rounds, not restarts."""

    #: Service, ConfigMap and access objects exist and the token is minted.
    children: bool = False
    #: The pods of the first round were created (see ``reconcile``).
    first_pods: bool = False


def _no_pod(task_type: str, index: int) -> dict[str, Any]:
    raise AssertionError(f"no pod may be created for {task_type}-{index} of a failed experiment")


def reconcile(runtime: Runtime, namespace: str, name: str, progress: Progress) -> Step:
    """Read the experiment and its pods, decide (``status``), act (``k8s``).

    Children other than pods are ensured once per loop (``progress``): after a restart
    the new loop adopts them; pods are compared with the desired set on every call.
    """
    api = runtime.api
    body = k8s.read_experiment(api, namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return Step(done=True)
    now = datetime.now(UTC)
    meta = meta_of(body)
    current = body.get("status")
    admitted = admit(body, runtime.settings, now)
    if isinstance(admitted, status.Decision):
        k8s.apply(api, meta, admitted, current, (), _no_pod, now)
        return Step(done=True)
    finished = (current or {}).get("phase") in status.FINISHED
    try:
        if not progress.children and not finished:
            for child in admitted.children:
                k8s.ensure(api, child, meta.uid)
            # Before any pod: the pods mount the token, and it is minted only if missing.
            tokens.refresh_if_due(api.client, namespace, name, runtime.settings.token_ttl_seconds)
        progress.children = True
        pods = k8s.list_pods(api, meta)
        decision = status.reconcile(
            admitted.spec,
            meta,
            pods,
            current,
            now,
            runtime.settings,
            (body.get("metadata") or {}).get("generation"),
        )
        if decision.create and not decision.delete and not progress.first_pods:
            # The first round creates the pods; the status it computed predates them.
            # Writing it would be overwritten at once, so look again first: one status
            # write (and one event) fewer per experiment.
            k8s.apply_pods(api, meta, decision, pods, admitted.render)
            progress.first_pods = True
            return Step(done=False, requeue_after=0.0)
        progress.first_pods = True
        if decision.status.phase in status.FINISHED and not finished:
            # Revoke first: should the status write fail, the next round revokes again.
            tokens.revoke(api.client, namespace, name)
        k8s.apply(api, meta, decision, current, pods, admitted.render, now)
    except (k8s.ChildConflict, k8s.Rejected) as problem:
        reason = "ChildConflict" if isinstance(problem, k8s.ChildConflict) else "PodRejected"
        if isinstance(problem, k8s.Rejected) or problem.kind == "Pod":
            # The access objects exist and are ours (they come before any pod).
            tokens.revoke(api.client, namespace, name)
        failed = blocked(current, reason, str(problem), now)
        k8s.apply(api, meta, failed, current, (), _no_pod, now)
        # Look once more: the finished status now applies cleanPodPolicy to created pods.
        progress.children = True
        return Step(done=False, requeue_after=0.0)
    over = decision.status.phase in status.FINISHED and decision.requeue_after is None
    return Step(done=over or decision.delete_experiment, requeue_after=decision.requeue_after)


# -- kopf wiring -----------------------------------------------------------------------------


def connection_info(configuration: k8s_client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the ``kubernetes`` client uses."""
    authorization = (configuration.api_key or {}).get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme or None,
        token=token or None,
    )


def _configuration(memo: kopf.Memo) -> k8s_client.Configuration:
    configured = memo.get("configuration")
    return configured if configured is not None else k8s.load_configuration()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Log kopf in exactly where the ``kubernetes`` client goes (in-cluster or KUBECONFIG)."""
    return connection_info(_configuration(memo))


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf for few writes and quick reactions; read the operator's settings.

    ``memo.settings`` and ``memo.configuration`` (set by an embedding caller such as
    the tests) take precedence over the environment.
    """
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # our own Events report the transitions
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.reconnect_backoff = 0.5
    try:
        operator_settings = memo.get("settings") or from_env(os.environ)
    except SettingsError as problem:
        raise kopf.PermanentError(str(problem)) from None
    memo.runtime = Runtime(api=k8s.connect(_configuration(memo)), settings=operator_settings)


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        runtime.api.close()


async def _wait(wake: asyncio.Event, timeout: float) -> None:
    """Until a pod event wakes this loop, or ``timeout`` seconds pass."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def experiment_loop(
    namespace: str | None, name: str, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """The experiment's reconcile loop; exits when nothing is left to watch.

    kopf cancels it when the Experiment is deleted or the operator stops; a reconcile
    already running in its thread finishes harmlessly (every action is idempotent).
    """
    runtime: Runtime = memo.runtime
    namespace = namespace or ""
    key = (namespace, name)
    wake = asyncio.Event()
    runtime.wakeups[key] = wake
    progress = Progress()
    backoff = RETRY_SECONDS[0]
    try:
        while True:
            wake.clear()
            try:
                step = await asyncio.to_thread(reconcile, runtime, namespace, name, progress)
            except RETRYABLE as problem:
                logger.warning(f"reconcile failed, retrying in {backoff:.1f}s: {problem}")
                await _wait(wake, backoff)
                backoff = min(backoff * 2, RETRY_SECONDS[1])
                continue
            backoff = RETRY_SECONDS[0]
            if step.done:
                return
            timeout = RESYNC_SECONDS if step.requeue_after is None else step.requeue_after
            await _wait(wake, min(timeout, RESYNC_SECONDS))
    finally:
        if runtime.wakeups.get(key) is wake:
            del runtime.wakeups[key]


@kopf.on.event("v1", "pods", labels={names.LABEL_EXPERIMENT: kopf.PRESENT})
async def pod_event(namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    """Wake the owning experiment's loop; the loop reads the pods itself."""
    runtime: Runtime | None = memo.get("runtime")
    key = (namespace or "", labels[names.LABEL_EXPERIMENT])
    wake = runtime.wakeups.get(key) if runtime else None
    if wake is not None:
        wake.set()


def _active(status: Mapping[str, Any], **_: Any) -> bool:
    return status.get("phase") in ("Pending", "Running")


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=TOKEN_CHECK_SECONDS,
    initial_delay=TOKEN_CHECK_SECONDS,
    when=_active,
)
def refresh_token(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Replace the experiment's API token before it expires (a no-op until it is due)."""
    runtime: Runtime = memo.runtime
    tokens.refresh_if_due(
        runtime.api.client, namespace or "", name, runtime.settings.token_ttl_seconds
    )
