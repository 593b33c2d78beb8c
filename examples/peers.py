"""A distributed example that needs nothing but the incluster SDK.

Every replica (master, workers, ps) listens on its own address from the cluster
definition, waits for its peers, connects to each of them over TCP and exchanges a
greeting, trains a toy model, and logs metrics and an artifact. It proves, end to end,
that each replica sees its own identity and the right peers, and that they can really
talk to each other: the same file runs under the operator, under `incluster run`, and
as a plain `python examples/peers.py` (a cluster of one).
"""

from __future__ import annotations

import json
import random
import socket
import socketserver
import sys
import threading
import time

import incluster
from incluster import tracking

#: How long a replica waits for its peers to start, connect and greet it.
TIMEOUT = 60.0


def me(task: dict[str, object]) -> str:
    return f"{task['type']}:{task['index']}"


class Greetings(socketserver.ThreadingTCPServer):
    """Answers each peer's greeting with our identity and records who greeted us."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], identity: str) -> None:
        self.identity = identity
        self.greeted_by: set[str] = set()
        self.finished: set[str] = set()
        self.changed = threading.Condition()
        super().__init__(address, _Handler)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, Greetings)
        line = self.rfile.readline(4096)
        if not line:  # wait_for_peers only probes the port
            return
        message = json.loads(line)
        self.wfile.write(json.dumps({"from": server.identity}).encode() + b"\n")
        with server.changed:
            (server.finished if message.get("done") else server.greeted_by).add(message["from"])
            server.changed.notify_all()


def greet(address: str, identity: str, done: bool = False) -> str:
    """Send our identity (and whether we are done) to a peer; return who answered."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(json.dumps({"from": identity, "done": done}).encode() + b"\n")
        reply = conn.makefile("rb").readline()
    return str(json.loads(reply)["from"])


def leader_of(cluster: dict[str, list[str]]) -> str:
    """The replica that decides success: master or chief, else worker 0."""
    for task_type in ("master", "chief", "worker"):
        if cluster.get(task_type):
            return f"{task_type}:0"
    return ""


def main() -> int:
    experiment = incluster.Experiment()
    task = experiment.get_task_info()
    cluster = experiment.get_cluster_def()
    identity = me(task)
    declarations = experiment.get_declarations()
    print(f"{identity}: cluster {cluster}", flush=True)

    own = cluster.get(str(task["type"]), [])
    if not own:  # a plain `python examples/peers.py`: a cluster of one
        server = None
        peers: dict[str, str] = {}
    else:
        host, _, port = own[int(str(task["index"]))].rpartition(":")
        # On a real cluster our name resolves to the pod IP; listen on every interface.
        bind = host if host.startswith("127.") else "0.0.0.0"
        server = Greetings((bind, int(port)), identity)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        peers = {
            f"{t}:{i}": a
            for t, addresses in cluster.items()
            for i, a in enumerate(addresses)
            if f"{t}:{i}" != identity
        }

    started = time.monotonic()
    incluster.wait_for_peers(timeout=TIMEOUT)
    answers = {name: greet(address, identity) for name, address in peers.items()}
    wrong = {name: who for name, who in answers.items() if who != name}
    if wrong:
        print(f"{identity}: peers answered with the wrong identity: {wrong}", file=sys.stderr)
        return 1
    print(f"{identity}: exchanged greetings with {sorted(answers)}", flush=True)

    tracking.init()
    tracking.log_inputs(replica=identity, **declarations)
    tracking.log_metric("peers_reached", len(answers), step=0)
    tracking.log_metric("wait_seconds", time.monotonic() - started, step=0)

    # A toy model: fit y = 3x + 1 by gradient descent, one metric per step.
    rng = random.Random(identity)
    lr = float(declarations.get("lr", 0.1))
    steps = int(declarations.get("steps", 20))
    w = b = 0.0
    loss = 0.0
    for step in range(1, steps + 1):
        xs = [rng.uniform(-1, 1) for _ in range(32)]
        errors = [(w * x + b) - (3 * x + 1) for x in xs]
        loss = sum(e * e for e in errors) / len(errors)
        w -= lr * 2 * sum(e * x for e, x in zip(errors, xs, strict=True)) / len(xs)
        b -= lr * 2 * sum(errors) / len(errors)
        tracking.log_metric("loss", loss, step=step)

    model = tracking.get_outputs_path(f"model-{task['type']}-{task['index']}.json")
    with open(model, "w") as f:
        json.dump({"w": w, "b": b, "loss": loss, "peers": sorted(answers)}, f)
    tracking.log_artifact_ref(model, name=f"model-{task['type']}-{task['index']}")
    tracking.log_outputs(loss=loss, w=w, b=b)

    tracking.end()
    print(f"{identity}: done, loss {loss:.4f}", flush=True)

    # Stay reachable until every peer has greeted us, so no peer finds us gone. The
    # leader leaves last, once every peer reported done: when it succeeds (and the
    # experiment with it), every replica's metrics and artifact are already written.
    if server is not None:
        leader = leader_of(cluster)
        wanted = set(peers)

        def complete() -> bool:
            return server.greeted_by >= wanted and (identity != leader or server.finished >= wanted)

        with server.changed:
            done = server.changed.wait_for(complete, timeout=TIMEOUT)
        if done and identity != leader:
            greet(peers[leader], identity, done=True)
        server.shutdown()
        if not done:
            missing = sorted(wanted - server.greeted_by) or sorted(wanted - server.finished)
            print(f"{identity}: still waiting for {missing}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
