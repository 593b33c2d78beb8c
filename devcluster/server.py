"""Serve an Emulator over HTTP: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import kmock

from devcluster.emulator import Emulator

T = TypeVar("T")


class ThreadedCluster:
    """An emulator listening on 127.0.0.1 from its own event loop in a daemon thread.

    Tests with the synchronous `kubernetes` client, kubectl subprocesses and kopf's
    KopfRunner (another thread) all talk to it over HTTP; `call()` runs code on its loop
    so tests can inspect or change the state without racing the server.
    """

    def __init__(self, port: int = 0, **options: Any) -> None:
        self._port = port
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="devcluster", daemon=True
        )
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[tuple[Emulator, str]] = concurrent.futures.Future()
        self._done: concurrent.futures.Future[None] | None = None
        self.emulator: Emulator
        self.url = ""

    def start(self) -> ThreadedCluster:
        self._thread.start()
        self._done = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        try:
            self.emulator, self.url = self._ready.result(timeout=30)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise
        return self

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with (
                Emulator(**self._options) as emu,
                kmock.Server(emu, port=self._port or None) as srv,
            ):
                self._ready.set_result((emu, f"http://127.0.0.1:{srv.port}"))
                await self._stop.wait()
                emu.close_watches()  # before the server waits for its handlers to finish
        except BaseException as e:
            if not self._ready.done():
                self._ready.set_exception(e)
            raise

    def call(self, fn: Callable[[], T | Awaitable[T]], timeout: float = 30) -> T:
        """Run `fn` on the server's loop (awaiting it if it returns an awaitable)."""

        async def run() -> T:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result  # type: ignore[no-any-return]
            return result  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def cut_watches(self) -> int:
        return self.call(self.emulator.cut_watches)

    def stop(self, grace: float = 10.0) -> None:
        """Shut down gracefully; after ``grace`` seconds cancel what is still running.

        A client may hold a request open past the shutdown (a watch that reached the
        server while it was closing); like kube-apiserver's shutdown timeout, the grace
        period bounds the wait instead of failing the caller.
        """
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._done is not None:
            try:
                self._done.result(timeout=grace)
            except concurrent.futures.TimeoutError:
                self._done.cancel()  # cancels the serving task on its loop
                with contextlib.suppress(concurrent.futures.CancelledError, TimeoutError):
                    self._done.result(timeout=grace)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=30)
                self._loop.close()

    def __enter__(self) -> ThreadedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
