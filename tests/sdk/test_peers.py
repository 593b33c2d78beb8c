"""wait_for_peers against real sockets on 127.0.0.1: listening, late, closed, unresolvable."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping

import pytest
from incluster import ContextError, contract, peers, wait_for_peers

OWN = {"type": "master", "index": 0}


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets bound to free ports on 127.0.0.1, closed after the test."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def bound(sockets: list[socket.socket], listening: bool) -> tuple[socket.socket, str]:
    """A socket on a free port; without listen() the port refuses connections but stays ours."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    if listening:
        sock.listen(16)
    sockets.append(sock)
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


def test_all_listening(sockets: list[socket.socket]) -> None:
    _, a = bound(sockets, listening=True)
    _, b = bound(sockets, listening=True)
    result = wait_for_peers(timeout=5, cluster={"worker": [a, b]}, task=OWN)
    assert [(p.task_type, p.index, p.address) for p in result] == [
        ("worker", 0, a),
        ("worker", 1, b),
    ]
    assert [f"{p.sockaddr[0]}:{p.sockaddr[1]}" for p in result] == [a, b]


def test_own_address_is_skipped(sockets: list[socket.socket]) -> None:
    _, closed = bound(sockets, listening=False)
    _, peer = bound(sockets, listening=True)
    cluster = {"master": [peer], "worker": [closed]}
    result = wait_for_peers(timeout=5, cluster=cluster, task={"type": "worker", "index": 0})
    assert [p.address for p in result] == [peer]


def test_peer_that_listens_late(sockets: list[socket.socket]) -> None:
    _, ready = bound(sockets, listening=True)
    late, late_address = bound(sockets, listening=False)
    first_round_failed = threading.Event()
    reported: list[Mapping[str, str]] = []

    def on_retry(unreachable: Mapping[str, str]) -> None:
        reported.append(unreachable)
        first_round_failed.set()

    def start_listening() -> None:
        if first_round_failed.wait(timeout=10):
            late.listen(16)

    starter = threading.Thread(target=start_listening)
    starter.start()
    try:
        result = wait_for_peers(
            timeout=20,
            cluster={"worker": [ready, late_address]},
            interval=0.01,
            task=OWN,
            on_retry=on_retry,
        )
    finally:
        first_round_failed.set()
        starter.join()
    assert [p.address for p in result] == [ready, late_address]
    assert "refused" in reported[0][f"worker:1 {late_address}"]
    assert f"worker:0 {ready}" not in reported[0]


def test_closed_port_times_out_naming_the_peer(sockets: list[socket.socket]) -> None:
    _, ready = bound(sockets, listening=True)
    _, closed = bound(sockets, listening=False)
    with pytest.raises(peers.PeersUnreachableError) as caught:
        wait_for_peers(timeout=0.3, cluster={"worker": [ready, closed]}, interval=0.05, task=OWN)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert list(error.unreachable) == [f"worker:1 {closed}"]
    assert "connection to 127.0.0.1 port" in error.unreachable[f"worker:1 {closed}"]
    assert "refused" in str(error)
    assert "1 of 2 peer(s) still unreachable" in str(error)


def test_dns_failure_is_told_apart_from_a_refusal(sockets: list[socket.socket]) -> None:
    _, closed = bound(sockets, listening=False)
    unresolvable = "xp-worker-9.does-not-exist.invalid:2222"
    with pytest.raises(peers.PeersUnreachableError) as caught:
        wait_for_peers(timeout=0, cluster={"worker": [unresolvable, closed]}, task=OWN)
    reasons = caught.value.unreachable
    assert reasons[f"worker:0 {unresolvable}"].startswith("DNS lookup of 'xp-worker-9.")
    assert "refused" in reasons[f"worker:1 {closed}"]
    assert unresolvable in str(caught.value)
    assert closed in str(caught.value)


def test_defaults_come_from_the_context(
    sockets: list[socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, own = bound(sockets, listening=False)
    _, peer = bound(sockets, listening=True)
    monkeypatch.setenv(contract.ENV_CLUSTER, f'{{"master": ["{peer}"], "worker": ["{own}"]}}')
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "worker", "index": 0}')
    assert [p.address for p in wait_for_peers(timeout=5)] == [peer]


def test_local_mode_has_no_peers() -> None:
    assert wait_for_peers(timeout=0) == []


def test_malformed_cluster_and_arguments() -> None:
    with pytest.raises(ContextError, match="'nope' is not of the form host:port"):
        wait_for_peers(timeout=0, cluster={"worker": ["nope"]}, task=OWN)
    with pytest.raises(ValueError, match="interval > 0"):
        wait_for_peers(timeout=1, cluster={}, interval=0)
