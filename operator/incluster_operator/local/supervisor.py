"""Run a container's argv as a local process group, keep its log, stop it cleanly.

Each process gets its own session (process group), like a container gets its own
cgroup: stopping it, or its main process exiting, ends every process it spawned, so no
stray grandchild keeps a port or a pipe open after the pod is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Exit code a kubelet reports when the container could not be started.
START_ERROR_CODE = 128


class StartError(RuntimeError):
    """The argv could not be executed (missing program, bad working directory)."""


@dataclass(frozen=True)
class Exit:
    """How a process ended, in the kubelet's terms (a signal N is exit code 128 + N)."""

    code: int
    signal: int | None
    started_at: float
    finished_at: float


def exit_code(returncode: int) -> tuple[int, int | None]:
    """Popen's returncode (negative for a signal) -> (kubelet exit code, signal)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


class Process:
    """A started process: poll, wait or stop it; its output goes to ``log_path``."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        log_path: Path,
        pump: threading.Thread | None,
    ) -> None:
        self._popen = popen
        self._pump = pump
        self.log_path = log_path
        self.started_at = time.time()
        self._exit: Exit | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> Exit | None:
        """The exit once the process has ended (its group is then killed), else None."""
        if self._exit is None and self._popen.poll() is not None:
            self._finish()
        return self._exit

    def wait(self, timeout: float | None = None) -> Exit | None:
        """Block until the process ends or ``timeout`` passes (then None)."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self._finish()

    def stop(self, grace: float = 10.0) -> Exit:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds; return the exit."""
        if self.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
        return self._finish()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def _finish(self) -> Exit:
        with self._lock:
            if self._exit is None:
                finished = time.time()
                # The main process is gone: end whatever it left behind in its group.
                self._signal_group(signal.SIGKILL)
                if self._pump is not None:
                    self._pump.join()
                code, sig = exit_code(self._popen.wait())
                self._exit = Exit(code, sig, self.started_at, finished)
            return self._exit


def _pump(stream: object, log_path: Path, on_line: Callable[[bytes], None]) -> threading.Thread:
    """Copy a pipe to the log file line by line, handing each line to ``on_line`` too."""

    def run() -> None:
        assert hasattr(stream, "readline")
        with log_path.open("ab", buffering=0) as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                on_line(line)
        with contextlib.suppress(OSError):
            stream.close()  # type: ignore[attr-defined]

    thread = threading.Thread(target=run, name=f"log:{log_path.name}", daemon=True)
    thread.start()
    return thread


def start(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path | None,
    log_path: Path,
    on_line: Callable[[bytes], None] | None = None,
) -> Process:
    """Start ``argv``; stdout and stderr both go to ``log_path`` (appended, like restarts).

    With ``on_line`` the output goes through a pipe and each line is also handed to the
    callback (the local runner prints it prefixed); without it, straight to the file.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if on_line is None:
            with log_path.open("ab") as log:
                popen = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            return Process(popen, log_path, None)
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        where = f" in {cwd}" if cwd else ""
        raise StartError(f"cannot start {argv[0]!r}{where}: {exc.strerror or exc}") from None
    return Process(popen, log_path, _pump(popen.stdout, log_path, on_line))
