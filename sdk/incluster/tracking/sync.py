"""Keep a bounded tracking summary in the Experiment's ``status.tracking``, via the operator.

Why a poller on a daemon thread: the logging calls must stay as fast as a bare
``os.write`` whatever the operator does (down, slow, 429, 500, 403). The run only bumps
``run.version``; this thread looks at it every N seconds, builds a bounded document from
``run.summary()`` and sends it to the operator's report API, which folds it into the
status (the pod holds no right to write the Experiment itself). A failed report is
retried with backoff (never more often than the interval allows) and never raised; each
kind of failure is logged once. An unchanged summary is sent again every
``HEARTBEAT_ROUNDS`` intervals, so the status converges after an operator restart lost
what it had accepted but not yet written. The full history stays in the event files;
the status holds the latest value and step per metric, inputs, outputs, tags and refs.

Why bounded: the Experiment is one etcd object (1.5 MiB at most, and every watcher gets
all of it on each change). The document is capped per section and in bytes, far below
that, and says what it left out.

Only one replica reports (chief/master, else worker 0); the operator refuses the others.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from incluster import context, contract
from incluster.client import ApiError, AuthError, Client, TokenFileError, UnreachableError
from incluster.errors import ContextError

log = logging.getLogger("incluster.tracking.sync")

DEFAULT_INTERVAL: Final = 10.0
#: The first retry after a failure; doubled per failure, capped at the interval.
RETRY_FIRST_SECONDS: Final = 0.5
#: How long ``close()`` keeps trying to deliver the final summary by default.
FINAL_TIMEOUT_SECONDS: Final = 10.0
#: (connect, read) timeouts of the sync's client: short, the next round retries anyway.
CLIENT_TIMEOUT: Final = (2.0, 5.0)
#: An unchanged summary is reported again after this many intervals.
HEARTBEAT_ROUNDS: Final = 6

#: summary section -> key in ``status.tracking``, in the order the byte budget serves them.
SECTIONS: Final = (
    ("metrics", "metrics"),
    ("outputs", "outputs"),
    ("inputs", "inputs"),
    ("tags", "tags"),
    ("artifacts", "artifacts"),
    ("data_refs", "dataRefs"),
)


@dataclass(frozen=True)
class Limits:
    """Caps on the document; the defaults keep it under 64 KiB (etcd allows 1.5 MiB)."""

    max_entries: int = 200
    max_bytes: int = 64 * 1024
    max_entry_bytes: int = 2048


def is_summary_writer(cluster: Mapping[str, Sequence[str]], task: Mapping[str, Any]) -> bool:
    """True for the one replica that patches the summary: chief/master 0, else worker 0."""
    for task_type in (contract.CHIEF, contract.MASTER, contract.WORKER):
        if cluster.get(task_type):
            return task.get("type") == task_type and task.get("index") == 0
    return not cluster and task.get("index") == 0


def interval_from_env(environ: Mapping[str, str]) -> float:
    """The sync interval the operator set, or the default; a broken value is an error."""
    raw = environ.get(contract.ENV_SUMMARY_SYNC_SECONDS)
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ContextError(
            f"env var {contract.ENV_SUMMARY_SYNC_SECONDS}={raw!r} must be a number of seconds "
            "> 0 (the operator's summary sync setting)"
        )
    return value


def _json_safe(value: Any) -> Any:
    """Non-finite floats become the strings the event format uses; JSON cannot hold them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), allow_nan=False, default=str))


def tracking_document(
    summary: Mapping[str, Any],
    limits: Limits = Limits(),
    now: float | None = None,
    primary: str | None = None,
) -> dict[str, Any]:
    """The bounded ``status.tracking`` document for a run summary (pure).

    Dict sections keep their entries in name order, list sections their latest entries,
    until the per-section or byte cap is reached; an entry larger than
    ``max_entry_bytes`` is left out on its own. What was left out is counted under
    ``truncated`` so nobody mistakes the status for the whole story. ``primary`` names
    the metric shown as one short string in ``kubectl get xp``.
    """
    budget = limits.max_bytes - 512  # room for the scalars and the truncation note
    used = 0
    doc: dict[str, Any] = {}
    omitted: dict[str, int] = {}
    for source, key in SECTIONS:
        value = summary.get(source)
        if isinstance(value, Mapping):
            # Name order, the primary metric first so that the cap never drops it.
            order = sorted(value, key=lambda k: (str(k) != primary, str(k)))
            entries: Iterable[tuple[str | None, Any]] = ((str(k), value[k]) for k in order)
        elif isinstance(value, list | tuple):
            entries = ((None, v) for v in reversed(value))  # latest first
        else:
            continue
        kept: list[tuple[str | None, Any]] = []
        for name, raw in entries:
            if len(kept) >= limits.max_entries:
                break  # the rest is left out without being sized
            item = _json_safe(raw)
            size = _size(item) + (0 if name is None else _size(name) + 1) + 1
            if used + size <= budget and size <= limits.max_entry_bytes:
                kept.append((name, item))
                used += size
        if len(value) > len(kept):
            omitted[key] = len(value) - len(kept)
        if isinstance(value, Mapping):
            doc[key] = dict(kept)
        else:
            doc[key] = [item for _, item in reversed(kept)]
    metrics = summary.get("metrics")
    point = metrics.get(primary) if primary and isinstance(metrics, Mapping) else None
    if isinstance(point, Mapping):
        value, step = _json_safe(point.get("value")), point.get("step")
        text = f"{primary}={value:.6g}" if isinstance(value, float) else f"{primary}={value}"
        doc[contract.STATUS_TRACKING_PRIMARY] = text if step is None else f"{text} @ {step}"
    dropped = summary.get("dropped")
    if isinstance(dropped, int) and dropped:
        doc["droppedRecords"] = dropped
    moment = time.time() if now is None else now
    doc["updatedAt"] = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if omitted:
        doc["truncated"] = {
            "omitted": omitted,
            "note": (
                f"status.tracking keeps at most {limits.max_entries} entries per section and "
                f"{limits.max_bytes} bytes; the full history is in the event files under the "
                "experiment's outputs path (events/)"
            ),
        }
    return doc


def failure_kind(exc: BaseException) -> str:
    """One word per kind of failure, so each kind is logged once."""
    if isinstance(exc, TokenFileError):
        return "token"
    if isinstance(exc, AuthError):
        return "forbidden"
    if isinstance(exc, ApiError):
        if exc.status == 409:
            return "finished"
        return "server" if exc.status == 429 or exc.status >= 500 else "rejected"
    if isinstance(exc, UnreachableError):
        return "unreachable"
    if isinstance(exc, ContextError):
        return "context"
    return "internal"


class SummarySync:
    """The background patcher of one run's summary. ``start()``, then ``close()`` at end."""

    def __init__(
        self,
        version: Callable[[], int],
        summary: Callable[[], Mapping[str, Any]],
        client: Callable[[], Client],
        *,
        interval: float = DEFAULT_INTERVAL,
        limits: Limits = Limits(),
        primary: str | None = None,
    ) -> None:
        self._version = version
        self.primary = primary
        self._summary = summary
        self._make_client = client
        self._client: Client | None = None
        self.interval = interval
        self.limits = limits
        #: The run version whose summary the API last accepted (None: nothing yet).
        self.synced_version: int | None = None
        #: Failures seen so far, by kind (``failure_kind``).
        self.failures: dict[str, int] = {}
        self._last_sent = -math.inf
        self._stop = threading.Event()
        self._final_deadline = 0.0
        self._thread = threading.Thread(
            target=self._main, name="incluster-summary-sync", daemon=True
        )

    def start(self) -> SummarySync:
        self._thread.start()
        atexit.register(self.close)
        return self

    @property
    def converged(self) -> bool:
        """True when the status holds the summary of the run's current version."""
        return self.synced_version == self._version()

    def sync_once(self) -> bool:
        """Patch the current summary now; False (never an exception) on failure."""
        version = self._version()
        try:
            if self._client is None:
                self._client = self._make_client()
            doc = tracking_document(self._summary(), self.limits, primary=self.primary)
            self._client.report_tracking(doc)
        except Exception as exc:  # a bug here must not kill the thread either
            kind = failure_kind(exc)
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if self.failures[kind] == 1:
                log.warning(
                    "incluster could not update the experiment's status.tracking (%s): %s; "
                    "training and the event files are unaffected, the summary is retried in "
                    "the background and this kind of failure is not logged again",
                    kind,
                    exc,
                    exc_info=kind == "internal",  # a bug: the traceback is what helps
                )
            return False
        self.synced_version = version
        self._last_sent = time.monotonic()
        return True

    def _main(self) -> None:
        failures = 0
        while not self._stop.wait(self._retry_delay(failures)):
            stale = time.monotonic() - self._last_sent >= self.interval * HEARTBEAT_ROUNDS
            if self._version() != self.synced_version or stale:
                failures = 0 if self.sync_once() else failures + 1
        # Final round: deliver the last summary until the deadline close() set.
        while self._version() != self.synced_version and time.monotonic() < self._final_deadline:
            if self.sync_once():
                break
            failures += 1
            pause = min(self._retry_delay(failures), self._final_deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)  # backoff on this background thread, never in training
        if self._version() != self.synced_version:
            log.warning(
                "incluster could not deliver the final tracking summary to status.%s before "
                "the run ended (failures by kind: %s); the event files hold everything",
                contract.STATUS_TRACKING,
                self.failures,
            )
        if self._client is not None:
            self._client.close()

    def _retry_delay(self, failures: int) -> float:
        if failures == 0:
            return self.interval
        return min(self.interval, RETRY_FIRST_SECONDS * 2.0 ** (failures - 1))

    def close(self, timeout: float = FINAL_TIMEOUT_SECONDS) -> bool:
        """Push the final summary (trying for up to ``timeout`` s) and stop; True if synced.

        Returns within ``timeout`` seconds and never raises: a patch still in flight then is
        abandoned on the daemon thread, and a summary that cannot be delivered is logged
        once and left to the event files.
        """
        atexit.unregister(self.close)
        if not self._thread.is_alive():
            return self.converged
        self._final_deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(timeout)
        return self.converged


def start_for(
    version: Callable[[], int],
    summary: Callable[[], Mapping[str, Any]],
    environ: Mapping[str, str] | None = None,
) -> SummarySync | None:
    """Start the sync when this process is the summary writer of an in-cluster run.

    Returns None outside a cluster, without a report API (a local run), and on every
    other replica. Building the client is deferred to the thread, so a missing token
    file is reported there (once), not here.
    """
    env = os.environ if environ is None else environ
    if not context.is_in_cluster():
        return None
    document = context.document() or {}
    if not document.get(contract.KEY_REPORT_URL):
        return None  # a context but no operator (`incluster run`): the event files are the record
    if not is_summary_writer(context.get_cluster_def(), context.get_task_info()):
        return None
    interval = interval_from_env(env)
    primary = document.get(contract.KEY_PRIMARY_METRIC)
    return SummarySync(
        version,
        summary,
        lambda: Client(timeout=CLIENT_TIMEOUT, retries=0),
        interval=interval,
        primary=primary if isinstance(primary, str) else None,
    ).start()
