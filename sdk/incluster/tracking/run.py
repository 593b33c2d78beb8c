"""A run: one process's append-only event file plus an in-memory summary.

Durability model (docs/tracking.md): every record is one JSON line, and every call that
returns has handed its whole lines to the kernel in a single ``os.write`` on an
``O_APPEND`` descriptor. The kernel keeps them if the process is SIGKILLed or OOM-killed;
``end()`` adds the ``fsync`` that also survives a power loss. There is no user-space
buffer to lose. The only thread is the uploader's, and only when the outputs live in an
object store (``upload.Uploader``): it reads the file the calls wrote, never the calls.

The metric hot path is written for speed (the benchmark holds it against a bare
``os.write`` of an f-string): the JSON prefix of each metric name is built once and
cached, floats and ints are rendered with their C ``repr``, and the lock covers only the
write and two summary stores. Everything unusual (numpy scalars, NaN, a custom
timestamp, a failed write) leaves the hot path for a slower helper.

Failure model: bad input raises before anything is written; a failing disk never raises
out of a logging call (training matters more than its metrics), it warns once and counts
the lost records in ``dropped``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from time import time_ns as _time_ns
from types import TracebackType
from typing import TYPE_CHECKING, Any

from incluster import contract
from incluster.schemas import ArtifactKind
from incluster.tracking import paths

if TYPE_CHECKING:  # pragma: no cover
    from incluster.tracking.upload import Uploader

#: Version of the event line format, written in every ``run`` start record.
FORMAT_VERSION = 1

_float_repr = float.__repr__
_int_repr = int.__repr__
_write = os.write
_NONFINITE = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}
# O_RDWR only so that _open can look at the last byte a previous process left. Pods run
# Linux; the getattr()s keep a laptop run on Windows working (no newline translation).
_OPEN_FLAGS = (
    os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


_LIVE_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    for run in list(_LIVE_RUNS):
        run._set_lock(threading.RLock())


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _end_before_thread_shutdown(run: Run) -> None:
    """End an uploading run while the interpreter can still run its HTTP client.

    ``atexit`` hooks run after ``concurrent.futures`` has stopped accepting work, and the
    store clients resolve names and connect through an executor: an upload from a plain
    atexit hook fails with "cannot schedule new futures after shutdown". Hooks registered
    with ``threading._register_atexit`` run before that (the latest first), when the main
    thread has finished but nothing is torn down yet. A private hook, so only if present;
    the plain atexit hook stays as the fallback.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        ref = weakref.ref(run)

        def end_run() -> None:
            alive = ref()
            if alive is not None and os.getpid() == alive._pid:
                alive.end()

        with contextlib.suppress(RuntimeError):  # already shutting down: atexit remains
            register(end_run)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def check_name(name: object, argument: str = "name") -> str:
    """Metric, tag and data names: non-empty strings."""
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a str, got {type(name).__name__} {name!r}")
    if not name:
        raise ValueError(f"{argument} must be a non-empty string")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a mis-decoded byte string) cannot be written as UTF-8.
        raise ValueError(
            f"{argument}={name!r} holds a lone surrogate, which is not text; decode the bytes "
            "it came from as UTF-8"
        ) from None
    return name


def metric_json(value: object, argument: str = "value") -> str:
    """The JSON text of a metric value; NaN and +-inf become the strings of the format.

    Accepts anything real-valued with ``__float__`` (numpy scalars, 0-d tensors,
    Decimal, Fraction); rejects bools (almost always a bug) and strings.
    """
    if isinstance(value, (bool, str | bytes)) or value is None:
        raise TypeError(f"{argument} must be a real number, got {type(value).__name__} {value!r}")
    if isinstance(value, int):
        return _int_repr(int(value))
    if isinstance(value, complex) or not hasattr(type(value), "__float__"):
        raise TypeError(f"{argument} must be a real number, got {type(value).__name__} {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{argument} must be a real number, got {type(value).__name__}: {exc}"
        ) from None
    text = _float_repr(number)
    return _NONFINITE.get(text, text)


def metric_step(step: object) -> str:
    """JSON text of a step: ``null`` or a non-negative int (numpy ints accepted)."""
    if step is None:
        return "null"
    if isinstance(step, bool) or not hasattr(type(step), "__index__"):
        raise TypeError(f"step must be an int or None, got {type(step).__name__} {step!r}")
    number = int(step.__index__())  # type: ignore[attr-defined]
    if number < 0:
        raise ValueError(f"step must be >= 0, got {number}")
    return _int_repr(number)


def _check_reset(reset: object) -> bool:
    """``reset`` is a flag; anything else is a param that collided with the keyword."""
    if not isinstance(reset, bool):
        raise TypeError(
            f"reset must be True or False, got {type(reset).__name__} {reset!r}: it asks to "
            "replace what was logged before (Polyaxon's meaning), it is not a value to log"
        )
    return reset


def now_ms() -> int:
    """Milliseconds since the epoch: the format's ``t`` (an int renders 3x faster)."""
    return _time_ns() // 1_000_000


def event_time(timestamp: object) -> int:
    """``t`` in ms from seconds since the epoch or a datetime (naive means local time)."""
    if timestamp is None:
        return now_ms()
    datetime_module = sys.modules.get("datetime")  # loaded if the caller has a datetime
    if datetime_module is not None and isinstance(timestamp, datetime_module.datetime):
        return round(float(timestamp.timestamp()) * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise TypeError(
            "timestamp must be seconds since the epoch (int/float) or a datetime, "
            f"got {type(timestamp).__name__}"
        )
    if not math.isfinite(timestamp):
        raise ValueError(f"timestamp must be finite, got {timestamp!r}")
    return round(timestamp * 1000)


def _json_values(values: Mapping[str, Any], argument: str) -> str:
    """JSON of a mapping, naming the first key whose value cannot be stored faithfully."""
    for key, value in values.items():
        try:
            _dumps(value)
        except (TypeError, ValueError) as exc:
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(
                f"{argument}: the value of {key!r} cannot be stored as JSON ({exc}); "
                "pass str/int/float/bool/None or lists and dicts of them "
                "(NaN and inf are only stored for metrics)"
            ) from None
    return _dumps(dict(values))


class Run:
    """One process's tracking run: thread-safe, fork-aware, usable as a context manager."""

    def __init__(
        self,
        outputs_path: str | os.PathLike[str],
        task_type: str = "master",
        task_index: int = 0,
        *,
        register_atexit: bool = True,
        on_end: Callable[[Run], None] | None = None,
        attempt: int = 1,
        outputs_url: str | None = None,
        upload_seconds: float = 10.0,
    ) -> None:
        self._on_end = on_end
        self.outputs_path = os.path.abspath(os.fspath(outputs_path))
        self.events_path = os.path.join(
            self.outputs_path,
            contract.DIR_EVENTS,
            paths.events_file_name(task_type, task_index, attempt),
        )
        #: The whole-experiment attempt (``INCLUSTER_ATTEMPT``); 1 outside restarts.
        self.attempt = attempt
        self.task_type = task_type
        self.task_index = task_index
        #: Records that could not be written (full disk, read-only dir, ended run).
        self.dropped = 0
        # Re-entrant: a signal handler (SIGTERM from the kubelet) that logs or ends the
        # run may interrupt the main thread inside the lock; a plain Lock would deadlock.
        self._set_lock(threading.RLock())
        self._prefixes: dict[str, str] = {}
        #: metric name -> its latest line: one store per call, parsed only by summary().
        self._latest: dict[str, bytes] = {}
        self._inputs: dict[str, Any] = {}
        self._outputs: dict[str, Any] = {}
        self._tags: dict[str, None] = {}
        self._artifacts: dict[str, dict[str, Any]] = {}
        self._data_refs: dict[str, str] = {}
        self._version = 0
        self._pid = os.getpid()
        self._warned = False
        self._ended = False
        self._fd = self._open()
        start = {
            "k": "run",
            "event": "start",
            "format": FORMAT_VERSION,
            "task": {"type": task_type, "index": task_index},
            "pid": os.getpid(),
            "t": now_ms(),
        }
        if attempt > 1:
            start["attempt"] = attempt
        self._append((_dumps(start) + "\n").encode(), 1)
        #: The background uploader when the outputs live in an object store (else None).
        self.uploader: Uploader | None = None
        if outputs_url is not None:
            from incluster.tracking.upload import Uploader  # fsspec only when a URL is used

            self.uploader = Uploader(
                self.outputs_path, outputs_url, self.events_path, interval=upload_seconds
            )
        if register_atexit:
            atexit.register(self.end)
            if self.uploader is not None:
                _end_before_thread_shutdown(self)
        _LIVE_RUNS.add(self)

    def _set_lock(self, lock: threading.RLock) -> None:
        self._lock = lock
        # pre-bound for the hot path: two calls are cheaper than a ``with`` statement
        self._acquire = lock.acquire
        self._release = lock.release

    # --- storage -----------------------------------------------------------------------
    def _open(self) -> int:
        """Open the event file for appending, ending a line a killed process left cut.

        Without that newline, a restarted replica's first record would be glued to the
        fragment and both would be lost to the reader.
        """
        try:
            os.makedirs(os.path.dirname(self.events_path), exist_ok=True)
            fd = os.open(self.events_path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            self._drop(exc, 0)
            return -1
        # On a full disk this fails too; appending is still worth trying, so carry on.
        with contextlib.suppress(OSError, AttributeError):  # no os.pread on Windows
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
        return fd

    def _drop(self, exc: BaseException | str, count: int) -> None:
        """Count lost records and warn once: training goes on without its metrics."""
        self.dropped += count
        if not self._warned:
            self._warned = True
            reason = "the run has ended (call init() again)" if self._ended else str(exc)
            # Even a warnings filter set to "error" must not stop the training loop.
            with contextlib.suppress(Exception):
                warnings.warn(
                    f"incluster tracking cannot write {self.events_path}: {reason}; training "
                    "continues, further records are dropped and counted in run.dropped",
                    RuntimeWarning,
                    stacklevel=4,
                )

    def _short_write(self, data: bytes, written: int, count: int) -> None:
        """Finish a partial write, or cut it off so that no half line stays on disk."""
        fd = self._fd
        try:
            while written < len(data):
                written += _write(fd, data[written:])
        except OSError as exc:
            # Cut the partial line off; if even that fails, the reader skips it and says so.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR) - written)
            self._drop(exc, count)

    def _append(self, data: bytes, count: int) -> None:
        """One ``os.write`` of whole lines; call with the lock held (or before sharing)."""
        try:
            written = _write(self._fd, data)
        except OSError as exc:
            self._drop(exc, count)
            return
        if written != len(data):
            self._short_write(data, written, count)

    # --- metrics: the hot path ---------------------------------------------------------
    def _metric_prefix(self, name: object) -> str:
        checked = check_name(name)
        prefix = '{"k":"metric","n":' + json.dumps(checked) + ',"v":'
        self._prefixes[checked] = prefix
        return prefix

    def log_metric(
        self, name: str, value: float, step: int | None = None, timestamp: object = None
    ) -> None:
        """Append one metric point; returns once the line is in the kernel."""
        try:
            prefix = self._prefixes[name]
        except (KeyError, TypeError):
            prefix = self._metric_prefix(name)
        # An exact float or int formats itself inside the f-string (``format(x, "")`` is
        # ``repr(x)`` for both); only NaN/inf (``x - x`` is not 0) need their JSON string.
        v: object = value
        if type(value) is float:
            if value - value != 0.0:
                v = _NONFINITE[_float_repr(value)]
        elif type(value) is not int:
            v = metric_json(value)
        s: object = step
        if step is None:
            s = "null"
        elif type(step) is not int or step < 0:
            s = metric_step(step)
        t = _time_ns() // 1_000_000 if timestamp is None else event_time(timestamp)
        data = f'{prefix}{v},"s":{s},"t":{t}}}\n'.encode()
        self._acquire()
        try:
            written = _write(self._fd, data)
            if written != len(data):
                self._short_write(data, written, 1)
        except OSError as exc:
            self._drop(exc, 1)
        finally:
            self._latest[name] = data
            self._version += 1
            self._release()

    def log_metrics(
        self, step: int | None = None, timestamp: object = None, **metrics: Any
    ) -> None:
        """Several metrics at one step, validated first, written in one ``os.write``."""
        if not metrics:
            raise ValueError("log_metrics needs at least one name=value metric")
        s = metric_step(step)
        t = event_time(timestamp)
        lines = {}
        for name, raw in metrics.items():
            text = metric_json(raw, argument=f"metric {name!r}")
            prefix = self._prefixes.get(name) or self._metric_prefix(name)
            lines[name] = f'{prefix}{text},"s":{s},"t":{t}}}\n'.encode()
        data = b"".join(lines.values())
        with self._lock:
            self._append(data, len(lines))
            self._latest.update(lines)
            self._version += 1

    # --- other records -----------------------------------------------------------------
    def log_inputs(self, reset: bool = False, **params: Any) -> None:
        """Hyperparameters and other inputs, merged into the summary's ``inputs``.

        ``reset=True`` (Polyaxon's meaning) replaces what was logged before instead of
        merging; with no params it clears them. The record carries ``"reset":true`` so a
        reader of the event file replays the same thing.
        """
        self._log_values("inputs", self._inputs, reset, params)

    def log_outputs(self, reset: bool = False, **results: Any) -> None:
        """Final results, merged into the summary's ``outputs`` (``reset`` as for inputs)."""
        self._log_values("outputs", self._outputs, reset, results)

    def _log_values(
        self, kind: str, target: dict[str, Any], reset: object, values: dict[str, Any]
    ) -> None:
        reset = _check_reset(reset)
        if not values and not reset:
            raise ValueError(f"log_{kind} needs at least one name=value {kind[:-1]}")
        text = _json_values(values, f"log_{kind}")
        head = '{"k":"' + kind + '","values":' + text + (',"reset":true' if reset else "")

        def update() -> None:
            if reset:
                target.clear()
            # the summary keeps what was logged, not the caller's objects mutated later
            target.update(json.loads(text))

        self._append_with_time(head + ',"t":', update)

    def _append_with_time(self, head: str, update: Callable[[], None]) -> None:
        """Finish a record's line with the time, write it and update the summary."""
        data = f"{head}{now_ms()}}}\n".encode()
        with self._lock:
            self._append(data, 1)
            update()
            self._version += 1

    def log_tags(self, tags: str | Iterable[str], reset: bool = False) -> None:
        """Tags: one string or an iterable of non-empty strings.

        ``reset=True`` replaces the tags logged before (an empty list then clears them).
        """
        reset = _check_reset(reset)
        items = [tags] if isinstance(tags, str) else list(tags)
        if not items and not reset:
            raise ValueError("tags must hold at least one tag")
        for tag in items:
            check_name(tag, argument="tags")
        head = '{"k":"tags","tags":' + _dumps(items) + (',"reset":true' if reset else "")

        def update() -> None:
            if reset:
                self._tags.clear()
            self._tags.update(dict.fromkeys(items))

        self._append_with_time(head + ',"t":', update)

    def log_artifact_ref(
        self,
        path: str | os.PathLike[str],
        kind: ArtifactKind | str = ArtifactKind.FILE,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Record an artifact's kind, name, path and content hash; returns the record.

        ``path`` must be inside the outputs directory (relative to it, or absolute); the
        stored path is relative to it. Only regular files and directories of them are
        hashed: a FIFO or a device would block or never end.
        """
        try:
            kind_value = ArtifactKind(kind)
        except ValueError:
            raise ValueError(
                f"kind={kind!r} is not an artifact kind; use one of "
                f"{', '.join(k.value for k in ArtifactKind)}"
            ) from None
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or path, got {type(path).__name__}")
        text = os.fspath(path)
        if "://" in text:
            return self._log_url_ref(text, kind_value, name)
        if os.path.isabs(text):
            full = text
            real_root = os.path.realpath(self.outputs_path)
            real = os.path.realpath(full)
            if real != real_root and not real.startswith(real_root + os.sep):
                raise ValueError(
                    f"path={text!r} is outside the outputs directory {real_root}; artifacts "
                    "live there (tracking.get_outputs_path('name') gives a path inside it)"
                )
        else:
            full = paths.inside(self.outputs_path, text, argument="path")
        if not os.path.exists(full):
            raise ValueError(f"path={text!r} does not exist; write the artifact first")
        stem = os.path.splitext(os.path.basename(os.path.normpath(full)))[0]
        label = paths.check_artifact_name(stem if name is None else name)
        from incluster.tracking import hashing  # hashlib costs import time; load on use

        digest = hashing.tree_hash(full) if os.path.isdir(full) else hashing.file_hash(full)
        stored = self._relative(full)
        url = self.uploader.url_for(full) if self.uploader is not None else None
        return self._record_artifact(label, kind_value, stored, digest, url)

    def log_uploaded(
        self, name: str, url: str, digest: str, label: str | None = None
    ) -> dict[str, Any]:
        """Record a file sent to the store as ``name`` under the outputs path: a ``file``
        artifact (named ``label``, default ``name``) with its content hash."""
        label = paths.check_artifact_name(name if label is None else label)
        return self._record_artifact(label, ArtifactKind.FILE, name, digest, url)

    def _log_url_ref(self, url: str, kind: ArtifactKind, name: str | None) -> dict[str, Any]:
        """An artifact that already lives in an object store: recorded by URL, not hashed."""
        from incluster.tracking import objectstore

        if not objectstore.is_url(url):
            raise ValueError(
                f"path={url!r} is a URL of an unknown scheme; artifact URLs must be "
                f"{', '.join(s + '://' for s in objectstore.SCHEMES)}"
            )
        stem = os.path.splitext(url.rstrip("/").rsplit("/", 1)[-1])[0]
        label = paths.check_artifact_name(stem if name is None else name)
        return self._record_artifact(label, kind, url, None, url)

    def _record_artifact(
        self, label: str, kind: ArtifactKind, stored: str, digest: str | None, url: str | None
    ) -> dict[str, Any]:
        summary: dict[str, Any] = {"name": label, "kind": kind.value, "path": stored}
        summary["hash"] = digest
        if url is not None:
            summary["url"] = url  # where the object store has (or will have) it
        record = {"k": "artifact", "n": label, "kind": kind.value, "path": stored, "hash": digest}
        if url is not None:
            record["url"] = url
        data = (_dumps({**record, "t": now_ms()}) + "\n").encode()
        with self._lock:
            self._append(data, 1)
            self._artifacts[label] = summary
            self._version += 1
        return dict(summary)

    def _relative(self, full: str) -> str:
        real_root = os.path.realpath(self.outputs_path)
        return os.path.relpath(os.path.realpath(full), real_root).replace(os.sep, "/")

    def log_data_ref(self, data: object, data_name: str = "data", reset: bool = False) -> str:
        """Record a stable content hash of ``data`` under ``data_name``; returns the hash.

        ``data_name`` defaults to ``"data"`` as in Polyaxon v0; ``reset=True`` forgets the
        data refs logged before this one.
        """
        reset = _check_reset(reset)
        check_name(data_name, argument="data_name")
        from incluster.tracking import hashing

        digest = hashing.data_hash(data)
        head = '{"k":"data","n":' + _dumps(data_name) + ',"hash":' + _dumps(digest)
        head += ',"reset":true' if reset else ""

        def update() -> None:
            if reset:
                self._data_refs.clear()
            self._data_refs[data_name] = digest

        self._append_with_time(head + ',"t":', update)
        return digest

    def get_outputs_path(self, filename: str | os.PathLike[str] | None = None) -> str:
        """The outputs directory, or a file path inside it (parent dirs created)."""
        if filename is None:
            os.makedirs(self.outputs_path, exist_ok=True)
            return self.outputs_path
        full = paths.inside(self.outputs_path, filename, argument="filename")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    # --- summary -----------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Grows by one per logged record: a cheap "did anything change?" for pollers.

        A status-sync thread keeps the last version it sent and calls ``summary()`` only
        when this differs; nothing on the logging path knows the poller exists.
        """
        return self._version

    def summary(self) -> dict[str, Any]:
        """What the run has logged so far, JSON-able (NaN/inf as "NaN"/"Infinity")."""
        with self._lock:
            latest = list(self._latest.values())
            result: dict[str, Any] = {
                "inputs": dict(self._inputs),
                "outputs": dict(self._outputs),
                "tags": list(self._tags),
                "artifacts": [dict(a) for a in self._artifacts.values()],
                "data_refs": dict(self._data_refs),
                "dropped": self.dropped,
                "version": self._version,
            }
        points = (json.loads(line) for line in latest)
        result["metrics"] = {p["n"]: {"value": p["v"], "step": p["s"]} for p in points}
        return result

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self._ended

    def end(self, status: str = "succeeded") -> None:
        """Write the end record, fsync and close. Idempotent; also runs at exit.

        In a forked child (which inherits the run, its file and its atexit hook) this only
        closes the child's copy of the descriptor: the run belongs to the parent.
        """
        with self._lock:
            if self._ended:
                return
            if os.getpid() != self._pid:
                self._ended = True
                fd, self._fd = self._fd, -1
                if fd >= 0:
                    os.close(fd)
                return
            end = {"k": "run", "event": "end", "status": status, "dropped": self.dropped}
            self._append((_dumps({**end, "t": now_ms()}) + "\n").encode(), 1)
            self._ended = True
            fd, self._fd = self._fd, -1
            if fd >= 0:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    self._drop(exc, 0)
                os.close(fd)
        atexit.unregister(self.end)
        if self.uploader is not None:
            # the last event lines and the rest of the outputs; never raises, bounded
            self.uploader.close()
        if self._on_end is not None:
            self._on_end(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end("succeeded" if exc_type is None else "failed")

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<Run {self.events_path} {state} dropped={self.dropped}>"
