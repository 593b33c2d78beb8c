"""The SDK's report API client keeps its promises when the other side misbehaves.

The server here is a scripted HTTPS endpoint (fault injection: 429 with Retry-After, 503,
401/403, a stall, a certificate from another CA); the real report API's behaviour is
tested in tests/operator_e2e/test_operator_e2e_report.py. Promises: timeouts, backoff on
429/5xx, 401/403 reported once and not retried, the token re-read when the kubelet
rotates it, TLS verified against the context's CA, training never blocked, and outside a
cluster a message that says there is no in-cluster context.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
from incluster import Experiment, contract, tracking
from incluster.client import AuthError, Client, UnreachableError
from incluster.errors import ContextError
from incluster.tracking.run import Run
from incluster.tracking.sync import SummarySync
from incluster_operator import tlsfiles

from devcluster.testing import wait_for


@dataclass
class Scripted:
    """An HTTPS server answering from a script: (status, headers) per request, then 202."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, token
    stall: threading.Event = field(default_factory=threading.Event)

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        await request.read()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append((request.method, request.path, token))
        while self.stall.is_set():
            await asyncio.sleep(0.05)
        status, headers = self.script.pop(0) if self.script else (202, {})
        return aiohttp.web.json_response(
            {"message": f"scripted {status}"}, status=status, headers=headers
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Scripted, Path]]:
    """The scripted server on 127.0.0.1 and the CA file that verifies it."""
    tls = tlsfiles.self_signed(("127.0.0.1",))
    ca = tmp_path / "ca.crt"
    ca.write_text(tls.ca_pem)
    scripted = Scripted()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner: dict[str, Any] = {}

    async def start() -> None:
        app = aiohttp.web.Application()
        app.router.add_route("*", "/{tail:.*}", scripted.handle)
        runner["r"] = aiohttp.web.AppRunner(app, access_log=None, handle_signals=False)
        await runner["r"].setup()
        site = aiohttp.web.TCPSite(runner["r"], "127.0.0.1", 0, ssl_context=tls.server_context())
        await site.start()
        scripted.url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    try:
        yield scripted, ca
    finally:
        scripted.stall.clear()
        asyncio.run_coroutine_threadsafe(runner["r"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _client(scripted: Scripted, ca: Path, tmp_path: Path, **options: Any) -> Client:
    token = tmp_path / "token"
    if not token.exists():
        token.write_text("token-1")
    return Client(base_url=scripted.url, token_path=token, ca_path=ca, backoff=0.01, **options)


def test_outside_a_cluster_the_message_says_there_is_no_context(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(contract.ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    if Path(contract.DEFAULT_CONTEXT_DIR).exists():
        pytest.skip(f"{contract.DEFAULT_CONTEXT_DIR} exists on this machine")
    for make in (Client, lambda: Experiment().client, tracking.get_client):
        with pytest.raises(ContextError, match="no in-cluster context") as problem:
            make()
        assert "experiment name None" not in str(problem.value)


def test_a_context_without_an_operator_names_the_missing_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / contract.FILE_CONTEXT).write_text(json.dumps({contract.KEY_VERSION: 1}))
    monkeypatch.setenv(contract.ENV_CONTEXT_DIR, str(tmp_path))
    with pytest.raises(ContextError, match=contract.KEY_REPORT_URL):
        Client()


def test_the_context_gives_url_ca_and_token(
    server: tuple[Scripted, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scripted, ca = server
    document = {contract.KEY_VERSION: 1, contract.KEY_REPORT_URL: scripted.url}
    (tmp_path / contract.FILE_CONTEXT).write_text(json.dumps(document))
    (tmp_path / contract.FILE_REPORT_CA).write_text(ca.read_text())
    (tmp_path / contract.DIR_TOKEN).mkdir()
    (tmp_path / contract.DIR_TOKEN / contract.FILE_TOKEN).write_text("projected")
    monkeypatch.setenv(contract.ENV_CONTEXT_DIR, str(tmp_path))
    Client().report_tracking({"updatedAt": "2026-01-01T00:00:00Z"})
    assert scripted.seen == [("PUT", contract.REPORT_PATH_TRACKING, "projected")]


def test_429_and_5xx_are_retried_with_backoff_honouring_retry_after(
    server: tuple[Scripted, Path], tmp_path: Path
) -> None:
    scripted, ca = server
    scripted.script = [(429, {"Retry-After": "1"}), (503, {}), (500, {})]
    started = time.monotonic()
    assert _client(scripted, ca, tmp_path).report_tracking({}) == {"message": "scripted 202"}
    assert len(scripted.seen) == 4
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured


def test_401_and_403_are_not_retried_and_logged_once(
    server: tuple[Scripted, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scripted, ca = server
    scripted.script = [(403, {}), (403, {}), (401, {})]
    client = _client(scripted, ca, tmp_path)
    with caplog.at_level(logging.WARNING, logger="incluster.client"):
        for status in (403, 403, 401):
            with pytest.raises(AuthError) as refused:
                client.report_tracking({})
            assert refused.value.status == status
    assert len(scripted.seen) == 3
    assert len([r for r in caplog.records if "403" in r.getMessage()]) == 1


def test_a_rotated_token_is_read_again(server: tuple[Scripted, Path], tmp_path: Path) -> None:
    scripted, ca = server
    client = _client(scripted, ca, tmp_path)
    client.report_tracking({})
    fresh = tmp_path / ".token.new"
    fresh.write_text("token-2-longer")
    os.replace(fresh, tmp_path / "token")  # what the kubelet does
    client.report_tracking({})
    assert [token for *_, token in scripted.seen] == ["token-1", "token-2-longer"]


def test_a_server_of_another_ca_is_refused(server: tuple[Scripted, Path], tmp_path: Path) -> None:
    scripted, _ = server
    other = tmp_path / "other-ca.crt"
    other.write_text(tlsfiles.self_signed(("localhost",)).ca_pem)
    with pytest.raises(UnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
        _client(scripted, other, tmp_path, retries=0).report_tracking({})
    assert scripted.seen == []


def test_a_stalled_api_never_blocks_training(server: tuple[Scripted, Path], tmp_path: Path) -> None:
    scripted, ca = server
    scripted.stall.set()
    run = Run(str(tmp_path / "out"), "master", 0, register_atexit=False)
    sync = SummarySync(
        lambda: run.version,
        run.summary,
        lambda: _client(scripted, ca, tmp_path, timeout=(0.2, 0.2), retries=0),
        interval=0.05,
    ).start()
    started = time.monotonic()
    for step in range(2000):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    logging_took = time.monotonic() - started
    wait_for(lambda: sync.failures.get("unreachable"), message="the sync saw the stall")
    closing = time.monotonic()
    assert sync.close(timeout=0.5) is False
    assert time.monotonic() - closing < 2.0  # close() keeps its timeout
    run.end()
    assert logging_took < 2.0  # 2,000 calls; a blocking call would take 0.2 s each
