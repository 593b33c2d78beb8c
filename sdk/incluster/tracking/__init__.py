"""The v1 tracking API (seed 002): module functions over one default run per process.

    from incluster import tracking
    tracking.init()
    tracking.log_metric("loss", 0.1, step=1)

``init()`` reads the run context (outputs path, task identity) from
``incluster.context``; outside a cluster it writes under ``./outputs/local``, so the
same script runs unchanged on a laptop. Calling a logging function before ``init()``
initialises the default run on first use. The records land in
``<outputs>/events/<task-type>-<index>.jsonl`` (format: docs/tracking.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from incluster.schemas import ArtifactKind
from incluster.tracking.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from incluster.client import Client
    from incluster.tracking.sync import SummarySync

__all__ = [
    "ArtifactKind",
    "Run",
    "current_run",
    "end",
    "get_client",
    "get_outputs_path",
    "init",
    "log_artifact_ref",
    "log_data_ref",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_outputs",
    "log_tags",
]

_run: Run | None = None
#: Re-entrant so that a signal handler calling ``end()`` during ``init()`` cannot deadlock.
_init_lock = threading.RLock()
#: The status summary sync of the default run (None outside a cluster / on other replicas).
_sync: SummarySync | None = None


def _reset_init_lock() -> None:
    # held by another thread at fork time, it would never be released in the child
    global _init_lock
    _init_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_init_lock)


def init(outputs_path: str | os.PathLike[str] | None = None) -> Run:
    """Start (or return) this process's default run.

    A second call while the run is open returns the same run (asking for another
    outputs path is an error: one process, one event file); after ``end()`` it starts a
    new one that appends to the same per-replica file.
    """
    global _run
    with _init_lock:
        if _run is not None and not _run.ended:
            wanted = None if outputs_path is None else os.path.abspath(os.fspath(outputs_path))
            if wanted is not None and wanted != _run.outputs_path:
                raise ValueError(
                    f"outputs_path={wanted!r}: a run is already open at {_run.outputs_path!r}; "
                    "call tracking.end() first to start a run elsewhere"
                )
            return _run
        from incluster import context

        task = context.get_task_info()
        path = context.get_outputs_path() if outputs_path is None else outputs_path
        # The outputs URL stands for the context's outputs path, not for one passed here.
        url = context.get_outputs_url() if outputs_path is None else None
        interval = context.get_upload_seconds() if url else 0.0
        _run = run = Run(
            path,
            task["type"],
            task["index"],
            on_end=_forget,
            outputs_url=url,
            upload_seconds=interval,
            attempt=context.get_attempt(),
        )
        _bind(run)
        _start_sync(run)
        if run.uploader is not None:
            _upload_on_sigterm()
        return run


def _upload_on_sigterm() -> None:
    """On SIGTERM (the kubelet's stop), send the event lines written so far, then die.

    Installed only where nobody else handles SIGTERM (the default disposition) and only
    from the main thread (Python's rule); a framework's own handler is left alone.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        run = _run
        if run is not None and run.uploader is not None:
            run.uploader.flush_events(timeout=10.0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM, as without the handler

    global _sigterm_handler
    _sigterm_handler = on_sigterm
    signal.signal(signal.SIGTERM, on_sigterm)


def _start_sync(run: Run) -> None:
    """Start the status summary sync of the default run (docs/security.md); call locked."""
    global _sync
    from incluster import context

    if not context.is_in_cluster():
        return  # local runs never load the HTTP client (import time matters)
    from incluster.tracking import sync

    _sync = sync.start_for(lambda: run.version, run.summary)


def _bind(run: Run) -> None:
    """Point the module's ``log_metric`` at the open run's own method (one call less)."""
    global log_metric
    log_metric = run.log_metric


def _forget(run: Run) -> None:
    """Called when a run ends, however it is ended: the next call opens a new run.

    Its summary sync delivers the final summary then stops (outside the lock: that may
    take up to the sync's close timeout when the API is down).
    """
    global _run, _sync, log_metric
    syncer = None
    with _init_lock:
        if _run is run:
            _run = None
            log_metric = _log_metric_any_run
            syncer, _sync = _sync, None
    if syncer is not None:
        syncer.close()
    _restore_sigterm()


#: The SIGTERM handler ``init()`` installed for the uploader (None: none installed).
_sigterm_handler: Any = None


def _restore_sigterm() -> None:
    """Put back the default SIGTERM disposition if ours is still the one installed."""
    global _sigterm_handler
    handler, _sigterm_handler = _sigterm_handler, None
    if handler is None or threading.current_thread() is not threading.main_thread():
        return
    import signal

    if signal.getsignal(signal.SIGTERM) is handler:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def current_run() -> Run:
    """The default run, initialised on first use."""
    run = _run
    if run is None or run.ended:
        return init()
    return run


def _log_metric_any_run(
    name: str, value: float, step: int | None = None, timestamp: object = None
) -> None:
    """``log_metric`` while no default run is open: open it, then log."""
    current_run().log_metric(name, value, step, timestamp)


#: One metric point: ``Run.log_metric`` of the default run. While that run is open this
#: name is bound to the run's own method, sparing a Python call on the hottest path of
#: the SDK; before ``init()`` and after ``end()`` it opens the run first. (A reference
#: taken with ``from incluster.tracking import log_metric`` works either way.)
log_metric = _log_metric_any_run


def log_metrics(step: int | None = None, timestamp: Any = None, **metrics: Any) -> None:
    current_run().log_metrics(step, timestamp, **metrics)


def log_inputs(reset: bool = False, **params: Any) -> None:
    current_run().log_inputs(reset, **params)


def log_outputs(reset: bool = False, **results: Any) -> None:
    current_run().log_outputs(reset, **results)


def log_tags(tags: str | Iterable[str], reset: bool = False) -> None:
    current_run().log_tags(tags, reset)


def log_artifact_ref(
    path: str | os.PathLike[str],
    kind: ArtifactKind | str = ArtifactKind.FILE,
    name: str | None = None,
) -> dict[str, Any]:
    return current_run().log_artifact_ref(path, kind, name)


def log_data_ref(data: object, data_name: str = "data", reset: bool = False) -> str:
    return current_run().log_data_ref(data, data_name, reset)


def get_outputs_path(filename: str | os.PathLike[str] | None = None) -> str:
    return current_run().get_outputs_path(filename)


def get_client() -> Client:
    """The operator's report API client for this pod (``incluster.client.Client``)."""
    from incluster.client import Client

    return Client()


def end() -> None:
    """End the default run (idempotent); the next logging call starts a new one."""
    run = _run
    if run is not None:
        run.end()  # calls _forget
