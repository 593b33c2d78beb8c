"""The background uploader of one run's outputs to an object store.

The run keeps writing its event file locally (one ``os.write`` per call, docs/tracking.md),
so the logging path never waits for the network. This uploader, on a daemon thread:
  * every ``interval`` seconds sends the event file's new whole lines as one object
    (``objectstore.segment_name``): a SIGKILLed pod loses at most the last interval;
  * retries files that ``log_output(s)`` could not send at once;
and, when the run ends (``close()``), sends the last lines and every other file under
the outputs path that is not there yet.

Failure model: nothing raises into training. Each kind of failure (unreachable store,
refused credentials, missing bucket, missing fsspec implementation) is logged once as a
warning; the offsets of what was sent live in a small state file beside the event file,
so a store that comes back gets everything written meanwhile, and a restarted container
of the same pod carries on where the last one stopped instead of sending it all again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from incluster import contract
from incluster.tracking import objectstore
from incluster.tracking.objectstore import StoreError

log = logging.getLogger("incluster.tracking.upload")

DEFAULT_INTERVAL: Final = 10.0
#: How long ``close()`` keeps retrying a store that fails (an upload in progress is never
#: cut short by it: the deadline is checked between rounds).
CLOSE_TIMEOUT_SECONDS: Final = 60.0
#: Largest stretch of event lines sent as one object.
MAX_SEGMENT_BYTES: Final = 8 << 20
#: Failures that retrying within one run cannot fix (``close()`` gives up at once).
PERMANENT: Final = frozenset({"credentials", "bucket", "missing", "url", "shutdown"})
#: Files under the outputs path that are never uploaded: atomic-copy temporaries.
_TEMP_PREFIX: Final = ".incluster-"


def _state_path(events_path: str) -> str:
    directory, name = os.path.split(events_path)
    return os.path.join(directory, f".{name}.upload.json")


class Uploader:
    """Sends one run's outputs directory to ``url`` (the URL standing for ``root``)."""

    def __init__(
        self,
        root: str,
        url: str,
        events_path: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        start: bool = True,
    ) -> None:
        self.root = os.path.abspath(root)
        self.url = url.rstrip("/")
        self.events_path = events_path
        self.interval = interval
        self.replica = os.path.basename(events_path).removesuffix(contract.EVENTS_SUFFIX)
        #: Failures so far by kind (``StoreError.kind``); each kind is logged once.
        self.failures: dict[str, int] = {}
        #: Bytes of the event file already in the store.
        self.events_offset = 0
        self._incarnation = ""
        self._fs: Any = None
        self._lock = threading.RLock()
        self._pending: dict[str, str] = {}  # local file -> object URL, still to send
        self._sent: dict[str, tuple[int, int]] = {}  # local file -> (size, mtime_ns) sent
        self._stop = threading.Event()
        self._closed = False
        self._down = False
        self._last_kind = ""
        self._pid = os.getpid()
        self._load_state()
        try:
            # Now, not on first use: the store client's imports (and the executor its
            # HTTP client resolves names on) cannot be set up once the interpreter exits.
            self._store()
        except Exception as exc:
            self._failed(exc)
        self._thread = threading.Thread(target=self._main, name="incluster-upload", daemon=True)
        if start:
            self._thread.start()

    # --- where things go -------------------------------------------------------------
    def url_for(self, local: str) -> str | None:
        """The object URL of a file under the outputs path; None for a file elsewhere."""
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(local)
        if not real.startswith(real_root + os.sep):
            return None
        return objectstore.join(self.url, os.path.relpath(real, real_root).replace(os.sep, "/"))

    # --- state -----------------------------------------------------------------------
    def _load_state(self) -> None:
        """Carry on from the state file if it belongs to this event file's life."""
        state: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError), open(_state_path(self.events_path)) as f:
            state = json.loads(f.read())
        size = _size(self.events_path)
        offset = state.get("offset")
        incarnation = state.get("incarnation")
        if isinstance(offset, int) and isinstance(incarnation, str) and 0 <= offset <= size:
            self.events_offset, self._incarnation = offset, incarnation
        else:  # a new life of the event file (or the first upload of an existing one)
            self.events_offset, self._incarnation = 0, f"{time.time_ns() // 1_000_000:013d}"

    def _save_state(self) -> None:
        data = json.dumps({"incarnation": self._incarnation, "offset": self.events_offset})
        path = _state_path(self.events_path)
        try:
            with open(path + ".tmp", "w") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        except OSError:
            pass  # worst case the next life re-sends lines the store already has

    # --- the store -------------------------------------------------------------------
    def _store(self) -> Any:
        if self._fs is None:
            self._fs = objectstore.filesystem(self.url)
        return self._fs

    def _failed(self, exc: BaseException) -> None:
        error = objectstore.classify(exc, self.url)
        self._down = True
        self._last_kind = error.kind
        self.failures[error.kind] = self.failures.get(error.kind, 0) + 1
        if self.failures[error.kind] == 1:
            log.warning(
                "incluster cannot upload outputs to %s: %s; training continues, the outputs "
                "stay under %s and are sent when the store accepts them (this kind of "
                "failure is not logged again)",
                self.url,
                error,
                self.root,
            )

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("incluster uploads to %s work again; caught up", self.url)

    # --- events ----------------------------------------------------------------------
    def sync_events(self) -> bool:
        """Send the event file's new whole lines; True when the store has them all."""
        with self._lock:
            try:
                fs = self._store()
                while True:
                    data = _read_from(self.events_path, self.events_offset, MAX_SEGMENT_BYTES)
                    end = data.rfind(b"\n") + 1  # whole lines only
                    if end == 0:
                        break
                    name = objectstore.segment_name(self._incarnation, self.events_offset)
                    target = objectstore.join(self.url, contract.DIR_EVENTS, self.replica, name)
                    objectstore.put_bytes(fs, target, data[:end])
                    self.events_offset += end
                    self._save_state()
                    if len(data) < MAX_SEGMENT_BYTES:
                        break
            except Exception as exc:
                self._failed(exc)
                return False
            self._succeeded()
            return True

    # --- files -----------------------------------------------------------------------
    def upload_files(self, paths: Iterable[str]) -> list[str]:
        """Send files under the outputs path now; returns their object URLs.

        A file the store does not take now stays pending: the thread retries it every
        interval and ``close()`` once more. Never raises for a store failure.
        """
        urls: list[str] = []
        with self._lock:
            for path in paths:
                url = self.url_for(path)
                if url is None:
                    raise ValueError(f"{path} is not under the outputs path {self.root}")
                urls.append(url)
                self._pending[os.path.abspath(path)] = url
            self._send_pending()
        return urls

    def upload_as(self, files: list[tuple[str, str]]) -> list[str]:
        """Send ``(local file, name under the outputs path)`` pairs straight to the store.

        No staging copy when the store takes them (the seed's "cloud storage" meaning of
        ``log_output``). When it does not, each file is copied atomically to its place
        under the outputs path first, so it is sent later even if the source goes away.
        Returns the object URLs; never raises for a store failure.
        """
        urls = [objectstore.join(self.url, name) for _, name in files]
        with self._lock:
            try:
                objectstore.put_files(self._store(), [src for src, _ in files], urls)
            except Exception as exc:
                self._failed(exc)
                from incluster.tracking import paths, store

                for (source, name), url in zip(files, urls, strict=True):
                    target = paths.inside(self.root, name, argument="file name")
                    if os.path.realpath(source) != os.path.realpath(target):
                        store.copy_file_atomic(source, target)
                    self._pending[target] = url
                return urls
            self._succeeded()
            for source, _ in files:
                if os.path.realpath(source).startswith(os.path.realpath(self.root) + os.sep):
                    with contextlib.suppress(OSError):
                        st = os.stat(source)
                        self._sent[os.path.abspath(source)] = (st.st_size, st.st_mtime_ns)
        return urls

    def _send_pending(self) -> bool:
        if not self._pending:
            return True
        try:
            fs = self._store()
            batch: dict[str, tuple[str, os.stat_result]] = {}
            for path, url in list(self._pending.items()):
                try:
                    batch[path] = (url, os.stat(path))
                except FileNotFoundError:
                    del self._pending[path]  # removed since: nothing left to send
            # one call for the batch: fsspec sends the files concurrently
            objectstore.put_files(fs, list(batch), [url for url, _ in batch.values()])
            for path, (_, st) in batch.items():
                self._sent[path] = (st.st_size, st.st_mtime_ns)
                self._pending.pop(path, None)
        except Exception as exc:
            self._failed(exc)
            return False
        self._succeeded()
        return True

    def _queue_tree(self) -> None:
        """Queue every file under the outputs path not sent as it is now (events apart)."""
        events_dir = os.path.join(self.root, contract.DIR_EVENTS)
        for dirpath, dirnames, filenames in os.walk(self.root):
            if os.path.abspath(dirpath) == events_dir:
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                if filename.startswith(_TEMP_PREFIX) or os.path.islink(path):
                    continue
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    if self._sent.get(path) != (st.st_size, st.st_mtime_ns):
                        url = self.url_for(path)
                        if url is not None:
                            self._pending[path] = url

    # --- lifecycle -------------------------------------------------------------------
    def _main(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync_events()
            with self._lock:
                if self._pending:
                    self._send_pending()

    def flush_events(self, timeout: float = 10.0) -> bool:
        """Send the event lines written so far, trying for up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.sync_events():
                return True
            if time.monotonic() + 0.5 > deadline:
                return False
            time.sleep(0.5)  # backoff between two attempts at a store that is down

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Stop the thread, then send the last event lines and the rest of the outputs.

        Tries for up to ``timeout`` seconds; True when the store has everything. What
        could not be sent is named in one warning and stays on the local outputs path.
        """
        if self._closed:
            return not self._pending
        self._closed = True
        self._stop.set()
        if os.getpid() != self._pid:  # a forked child: the parent owns the uploads
            return True
        if self._thread.is_alive():
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            self._queue_tree()
        while True:
            events_ok = self.sync_events()
            with self._lock:
                files_ok = self._send_pending()
            if events_ok and files_ok:
                return True
            if self._last_kind in PERMANENT or time.monotonic() + 1.0 > deadline:
                break  # retrying refused credentials or a missing bucket cannot help
            time.sleep(1.0)
        log.warning(
            "incluster could not upload everything to %s before the run ended (%d file(s) "
            "and %d event byte(s) left; failures by kind: %s); they stay under %s",
            self.url,
            len(self._pending),
            max(_size(self.events_path) - self.events_offset, 0),
            self.failures,
            self.root,
        )
        return False


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _read_from(path: str, offset: int, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        return b""


def store_error_message(exc: BaseException, url: str) -> str:
    """For callers outside the uploader (the CLI): the classified, readable message."""
    error = objectstore.classify(exc, url)
    return str(error)


__all__ = ["StoreError", "Uploader", "store_error_message"]
