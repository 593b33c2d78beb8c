"""The console's two modes, and each replica's own loopback address."""

from __future__ import annotations

import io
from dataclasses import replace

from incluster_operator.local.address import replica_address
from incluster_operator.local.console import Console, describe
from incluster_operator.local.runner import Options, load_manifest, prepare
from incluster_operator.local.state import ContainerState, PodState

from tests.local.helpers import unique_example


def state(phase, code=None, restarts=0):
    c = ContainerState("main", restart_count=restarts)
    if code is not None:
        c = c.terminated(code, None, 1.0, 2.0)
    elif phase == "Running":
        c = c.running(1.0)
    return PodState(phase, "127.0.0.1", (), (c,), 0.0)


RUNNING = state("Running")
BAD = state("Failed", 3)


def test_pipe_mode_prints_prefixed_lines_and_each_phase_once():
    out = io.StringIO()
    console = Console(out, ["master-0", "worker-10"], colour=False, live=False)
    console.line("master-0", b"hello\n")
    console.status("worker-10", RUNNING)
    console.status("worker-10", replace(RUNNING, containers=(RUNNING.containers[0],)))
    console.status("worker-10", BAD)
    assert out.getvalue().splitlines() == [
        "master-0  | hello",
        "worker-10 | * Running",
        "worker-10 | * Failed  (main exit 3)",
    ]
    assert "\x1b" not in out.getvalue()


def test_live_mode_keeps_one_status_line_per_replica_at_the_bottom():
    out = io.StringIO()
    console = Console(out, ["a-0", "b-0"], colour=True, live=True)
    console.status("a-0", RUNNING)
    console.line("b-0", b"log line\n")
    text = out.getvalue()
    # The status block is erased (cursor up 2, clear) before the log line, then redrawn.
    assert "\x1b[2F\x1b[J" in text
    tail = text.rsplit("log line", 1)[1]
    assert "a-0 |" in tail
    assert "Running" in tail
    assert "b-0 |" in tail
    assert "Pending" in tail


def test_describe_stopped_and_waiting():
    assert describe(replace(BAD, reason="Stopped")) == "Stopped"
    waiting = PodState("Pending", "127.0.0.1", (), (ContainerState("main"),), 0.0)
    assert describe(waiting) == "Pending  ContainerCreating"


def test_each_replica_owns_the_loopback_address_in_its_cluster_definition(tmp_path):
    path, _ = unique_example(tmp_path)
    prepared = prepare(load_manifest(path), Options(outputs=tmp_path / "o", workdir=tmp_path))
    addresses = prepared.addresses
    assert len(set(addresses.values())) == 4
    for replica in prepared.pods:
        assert replica_address(prepared.plan(replica, "uid-1")) == addresses[replica]
        assert addresses[replica].startswith("127.")


def test_many_replicas_are_summarised_per_type_in_the_live_block():
    out = io.StringIO()
    replicas = [f"worker-{i}" for i in range(20)] + ["master-0"]
    console = Console(out, replicas, colour=False, live=True)
    for i in range(5):
        console.status(f"worker-{i}", RUNNING)
    console.status("worker-5", BAD)
    block = out.getvalue().rsplit("\x1b[J", 1)[1].splitlines()
    assert block == [
        "worker    | 1 Failed, 14 Pending, 5 Running",
        "master    | 1 Pending",
    ]
