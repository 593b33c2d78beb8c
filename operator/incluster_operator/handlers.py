"""Thin kopf handlers: one reconcile loop per Experiment, woken by its pods' events.

Why a daemon per experiment rather than create/update handlers: the status is a function
of the pods, so the handler that matters is "something changed, look again". One loop
per experiment means two pod events never race on the same status, bursts coalesce into
one look, and deadlines and TTLs become timed wake-ups. kopf starts the daemon for new
experiments and, after a restart, for existing ones: create and resume in one code path,
idempotent by the deterministic render (same names) and ``k8s.ensure`` (409 -> adopt).

The pod event handler does no I/O, it only wakes the owning loop. This module is only
wiring: a round is ``reconcile.reconcile`` (I/O through ``k8s``, run in a
worker thread because the ``kubernetes`` client blocks), and what the experiment should
own is ``desired.admit`` (pure).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from incluster_operator import k8s, tlsfiles
from incluster_operator.api import names
from incluster_operator.api.models import GROUP, PLURAL, VERSION
from incluster_operator.login import configuration, connection_info
from incluster_operator.reconcile import loop
from incluster_operator.reportapi import ReportApi
from incluster_operator.settings import Settings, SettingsError, from_env, split_listen

#: kopf's finalizer on Experiments (it stops the loop before the Experiment goes away).
FINALIZER: Final = "incluster.dev/operator"
#: The API server accepts objects nested 10,000 levels deep; kopf's watcher and the API
#: client parse them with Python's json, which needs a recursion budget above that (at
#: the default of 1,000 one such Experiment stopped the operator, again after every
#: restart). Validation then fails that one Experiment (``MAX_SPEC_DEPTH``).
RECURSION_LIMIT: Final = 25_000


@dataclass
class Runtime:
    """What every handler shares: the API connection, the settings, the loops' wake-ups."""

    api: k8s.Api
    settings: Settings
    reports: ReportApi
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Log kopf in exactly where the ``kubernetes`` client goes (in-cluster or KUBECONFIG)."""
    return connection_info(configuration(memo))


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf for few writes and quick reactions; read the settings; serve reports.

    ``memo.settings`` and ``memo.configuration`` (set by an embedding caller such as
    the tests) take precedence over the environment. The report API starts before any
    Experiment is handled: its URL and CA bundle go into every context ConfigMap.
    """
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # our own Events report the transitions
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.reconnect_backoff = 0.5
    try:
        operator_settings = memo.get("settings") or from_env(os.environ)
        host, port = split_listen(operator_settings.report_listen)
        tls = (
            tlsfiles.mounted(operator_settings.report_tls_dir)
            if operator_settings.report_tls_dir
            else tlsfiles.self_signed(_local_names(host))
        )
        context = tls.server_context()
    except (SettingsError, tlsfiles.TLSError) as problem:
        raise kopf.PermanentError(str(problem)) from None
    api = k8s.connect(configuration(memo))
    reports = ReportApi(api, operator_settings.report_audience)
    try:
        bound = await reports.start(host, port, context)
    except OSError as problem:
        api.close()
        raise kopf.PermanentError(
            f"the report API cannot listen on {operator_settings.report_listen} ({problem}); "
            "free the port or change INCLUSTER_OPERATOR_REPORT_LISTEN"
        ) from None
    url = operator_settings.report_url or f"https://{_url_host(host)}:{bound}"
    operator_settings = dataclasses.replace(
        operator_settings, report_url=url, report_ca_pem=tls.ca_pem
    )
    memo.runtime = Runtime(api=api, settings=operator_settings, reports=reports)


def _local_names(host: str) -> tuple[str, ...]:
    """What a self-signed certificate names: the listen address and this machine."""
    return (_url_host(host).strip("[]"), "127.0.0.1", "localhost")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.reports.stop()
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
    type: str | None,
    namespace: str | None,
    labels: Mapping[str, str],
    meta: Mapping[str, Any],
    memo: Any,
    **_: Any,
) -> None:
    """Wake the owning experiment's loop on a pod change; the loop reads the pods itself.

    ADDED is skipped: the loop looks again right after creating pods, and after a
    (re)start it lists them anyway; the resync catches a pod created by someone else.
    A pod deleted (or being deleted) loses its report API access at once.
    """
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None and (type == "DELETED" or meta.get("deletionTimestamp")):
        runtime.reports.forget_pod(str(meta.get("uid", "")))
    if type == "ADDED":
        return
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
