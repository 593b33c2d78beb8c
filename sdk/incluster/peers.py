"""Wait until every peer of a distributed experiment resolves and accepts connections.

A pod starts before its peers' DNS records exist (headless Service records appear only
once each pod has an IP) and before their processes listen, and frameworks fail hard or
hang on the first refused connection. Peer DNS lag is the top complaint in every peer
project's tracker, so the SDK offers one call to run before ``init_process_group`` /
``tf.distribute`` / ``jax.distributed.initialize``.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any

from incluster import context, topology
from incluster.errors import ContextError

#: Upper bound of the delay between rounds: a late peer is noticed within this time.
MAX_INTERVAL = 5.0
#: Upper bound of one connection attempt; a black-holed address costs at most this.
CONNECT_TIMEOUT = 2.0
#: Parallel probes: enough for thousands of peers, bounded so a pod does not open
#: thousands of sockets at once.
MAX_WORKERS = 32


@dataclass(frozen=True)
class Peer:
    """A replica that accepted a connection, and the socket address that accepted it."""

    task_type: str
    index: int
    address: str
    sockaddr: tuple[str, int]


class PeersUnreachableError(TimeoutError):
    """Some peers did not resolve or accept a connection before the timeout.

    ``unreachable`` maps each such peer (``"type:index host:port"``) to the last reason
    seen: a DNS failure means the peer's pod (or its Service record) does not exist yet;
    a refused connection means it exists but nothing listens on the port yet.
    """

    def __init__(self, unreachable: Mapping[str, str], total: int, timeout: float) -> None:
        self.unreachable = dict(unreachable)
        lines = "".join(f"\n  {peer}: {why}" for peer, why in sorted(self.unreachable.items()))
        super().__init__(
            f"{len(self.unreachable)} of {total} peer(s) still unreachable after "
            f"{timeout:g} s:{lines}"
        )


@dataclass(frozen=True)
class _Target:
    task_type: str
    index: int
    address: str
    host: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.task_type}:{self.index} {self.address}"


def _probe(target: _Target, connect_timeout: float) -> Peer | str:
    """One attempt: the Peer on success, else why it failed (DNS vs connect)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"DNS lookup of {target.host!r} failed: {exc.strerror or exc}"
    except (UnicodeError, OSError) as exc:
        return f"DNS lookup of {target.host!r} failed: {exc}"
    reasons: list[str] = []
    for family, kind, proto, _, sockaddr in infos:
        ip, port = str(sockaddr[0]), int(sockaddr[1])
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(connect_timeout)
                sock.connect(sockaddr)
        except ConnectionRefusedError:
            reasons.append(f"connection to {ip} port {port} refused")
        except TimeoutError:
            reasons.append(f"connection to {ip} port {port} timed out after {connect_timeout:g} s")
        except OSError as exc:
            reasons.append(f"connection to {ip} port {port} failed: {exc.strerror or exc}")
        else:
            return Peer(target.task_type, target.index, target.address, (ip, port))
    return "; ".join(reasons) or f"DNS lookup of {target.host!r} returned no address"


def _targets(cluster: Mapping[str, Sequence[str]], own: tuple[str, int]) -> list[_Target]:
    targets = []
    for task_type, addresses in cluster.items():
        for index, address in enumerate(addresses):
            if (task_type, index) != own:
                host, port = topology.split_address(address)
                targets.append(_Target(task_type, index, address, host, port))
    return targets


def wait_for_peers(
    timeout: float = 60.0,
    cluster: Mapping[str, Sequence[str]] | None = None,
    interval: float = 0.5,
    *,
    task: Mapping[str, Any] | None = None,
    on_retry: Callable[[Mapping[str, str]], None] | None = None,
) -> list[Peer]:
    """Block until every peer resolves and accepts a TCP connection; return them.

    ``cluster`` defaults to this experiment's cluster definition and ``task`` (the
    replica to skip, ``{"type", "index"}``) to this replica's own; outside a cluster
    there are no peers and the call returns ``[]`` at once. Unreachable peers are
    retried every ``interval`` seconds, doubling (with jitter, so thousands of pods do
    not probe in lock-step) up to ``MAX_INTERVAL``. ``on_retry``, if given, receives the
    peers still unreachable and why after each unsuccessful round (for logging).

    Returns the peers in cluster-definition order with the socket address that
    accepted. Raises PeersUnreachableError (a TimeoutError) naming every peer still
    unreachable when ``timeout`` passes, and ContextError for a malformed cluster.

    A probe connects and closes without sending anything, so the peers' servers see
    empty connections and must tolerate them.
    """
    if timeout < 0 or interval <= 0:
        raise ValueError(
            f"timeout must be >= 0 and interval > 0, got timeout={timeout}, interval={interval}"
        )
    if cluster is None:
        cluster = context.get_cluster_def()
    own_task = context.get_task_info() if task is None else task
    own = (str(own_task.get("type")), int(own_task.get("index", -1)))
    try:
        targets = _targets(cluster, own)
    except ContextError as exc:
        raise ContextError(f"cluster definition: {exc}") from None
    deadline = time.monotonic() + timeout
    found: dict[_Target, Peer] = {}
    pending = list(targets)
    reasons: dict[str, str] = {}
    delay = interval
    # Not a `with` block: its exit would wait for a probe stuck in the resolver.
    pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(targets))))
    try:
        while pending:
            remaining = deadline - time.monotonic()
            attempt_timeout = max(0.05, min(CONNECT_TIMEOUT, remaining))
            futures = {pool.submit(_probe, t, attempt_timeout): t for t in pending}
            done, not_done = wait_futures(futures, timeout=max(remaining, attempt_timeout) + 1.0)
            reasons = {}
            for future, target in futures.items():
                if future not in done:
                    reasons[target.label] = "DNS lookup or connection still pending"
                    continue
                result = future.result()
                if isinstance(result, Peer):
                    found[target] = result
                else:
                    reasons[target.label] = result
            pending = [t for t in pending if t not in found]
            if not pending:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not_done:
                raise PeersUnreachableError(reasons, len(targets), timeout)
            if on_retry is not None:
                on_retry(dict(reasons))
            # Jitter keeps thousands of pods from probing (and querying DNS) in lock-step.
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, MAX_INTERVAL)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [found[t] for t in targets]
