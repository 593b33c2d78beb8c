"""Thin kopf handlers: one reconcile loop per Experiment, woken by its pods' events.

Why a daemon per experiment rather than create/update handlers: the status is a function
of the pods, so the handler that matters is "something changed, look again". One loop
per experiment means two pod events never race on the same status, bursts coalesce into
one look, and deadlines and TTLs become timed wake-ups. kopf starts the daemon for new
experiments and, after a restart, for existing ones: create and resume in one code path,
idempotent by the deterministic render (same names) and ``k8s.ensure`` (409 -> adopt).

The pod event handler does no I/O, it only wakes the owning loop. This module is only
wiring: a round is ``reconcile.reconcile`` (I/O through ``k8s`` and ``tokens``, run in a
worker thread because the ``kubernetes`` client blocks), and what the experiment should
own is ``desired.admit`` (pure).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from incluster_operator import k8s, tokens
from incluster_operator.api import names
from incluster_operator.api.models import GROUP, PLURAL, VERSION
from incluster_operator.login import configuration, connection_info
from incluster_operator.reconcile import loop
from incluster_operator.settings import Settings, SettingsError, from_env

#: kopf's finalizer on Experiments (it stops the loop before the Experiment goes away).
FINALIZER: Final = "incluster.dev/operator"
#: How often the token timer looks at an experiment's token (refreshes happen far less often:
#: at half of a lifetime of at least 600 s, ``tokens.refresh_at``).
TOKEN_CHECK_SECONDS: Final = 60.0


@dataclass
class Runtime:
    """What every handler shares: the API connection, the settings, the loops' wake-ups."""

    api: k8s.Api
    settings: Settings
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Log kopf in exactly where the ``kubernetes`` client goes (in-cluster or KUBECONFIG)."""
    return connection_info(configuration(memo))


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
    memo.runtime = Runtime(api=k8s.connect(configuration(memo)), settings=operator_settings)


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        runtime.api.close()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def experiment_loop(
    namespace: str | None, name: str, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """The experiment's reconcile loop, reachable by its pods' events while it runs.

    kopf cancels it when the Experiment is deleted or the operator stops.
    """
    runtime: Runtime = memo.runtime
    key = (namespace or "", name)
    wake = runtime.wakeups[key] = asyncio.Event()
    try:
        await loop(runtime.api, runtime.settings, key[0], name, wake, logger.warning)
    finally:
        if runtime.wakeups.get(key) is wake:
            del runtime.wakeups[key]


@kopf.on.event("v1", "pods", labels={names.LABEL_EXPERIMENT: kopf.PRESENT})
async def pod_event(
    type: str | None, namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any
) -> None:
    """Wake the owning experiment's loop on a pod change; the loop reads the pods itself.

    ADDED is skipped: the loop looks again right after creating pods, and after a
    (re)start it lists them anyway; the resync catches a pod created by someone else.
    """
    if type == "ADDED":
        return
    runtime: Runtime | None = memo.get("runtime")
    key = (namespace or "", labels[names.LABEL_EXPERIMENT])
    wake = runtime.wakeups.get(key) if runtime else None
    if wake is not None:
        wake.set()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def experiment_event(
    type: str | None,
    namespace: str | None,
    name: str | None,
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    memo: Any,
    **_: Any,
) -> None:
    """Wake the experiment's loop when its spec has a generation the status has not seen.

    A finished (or rejected) experiment's loop sleeps until then, so a corrected
    ``kubectl apply`` is looked at at once; status writes (same generation) wake nothing.
    """
    if type in (None, "DELETED") or meta.get("generation") == status.get("observedGeneration"):
        return
    runtime: Runtime | None = memo.get("runtime")
    wake = runtime.wakeups.get((namespace or "", name or "")) if runtime else None
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
