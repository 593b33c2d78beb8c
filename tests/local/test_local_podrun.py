"""PodRun with real processes: init order, restart policies, exit codes, stop, status."""

from __future__ import annotations

import sys
import threading

from incluster_operator.local.lookups import StaticLookups
from incluster_operator.local.plan import Layout, plan_pod
from incluster_operator.local.podrun import Backoff, PodRun
from incluster_operator.local.state import pod_status

FAST = Backoff(first=0.01, cap=0.05)


def container(name, code, **extra):
    return {"name": name, "command": [sys.executable, "-c", code], **extra}


def make_pod(tmp_path, containers, init=(), restart="Never", grace=30):
    pod = {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": grace,
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": list(init),
            "containers": list(containers),
        },
    }
    return plan_pod(pod, StaticLookups(), Layout(tmp_path), base_env={})


MOUNT = {"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
APPEND = "import sys; open('/shared/order', 'a').write(sys.argv[1] + chr(10))"


def test_init_containers_run_first_in_order_then_the_containers(tmp_path):
    plan = make_pod(
        tmp_path,
        [container("main", APPEND, args=["main"], **MOUNT)],
        init=[container(f"init{i}", APPEND, args=[f"init{i}"], **MOUNT) for i in range(3)],
    )
    states = []
    final = PodRun(plan, "127.0.0.5", on_change=states.append).start().wait(20)
    assert final.phase == "Succeeded"
    order = (plan.pod_dir / "volumes" / "shared" / "order").read_text().split()
    assert order == ["init0", "init1", "init2", "main"]
    phases = [s.phase for s in states]
    assert phases[0] == "Pending"
    assert phases.index("Running") > max(i for i, p in enumerate(phases) if p == "Pending")
    status = pod_status(final)
    assert status["podIP"] == "127.0.0.5"
    assert [c["state"]["terminated"]["reason"] for c in status["initContainerStatuses"]] == [
        "Completed"
    ] * 3
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_failed_container_fails_the_pod_with_its_exit_code(tmp_path):
    plan = make_pod(
        tmp_path,
        [container("ok", "pass"), container("bad", "import sys; print('boom'); sys.exit(7)")],
    )
    final = PodRun(plan, "127.0.0.1").start().wait(20)
    assert final.phase == "Failed"
    codes = {c.name: (c.state, c.exit_code, c.reason) for c in final.containers}
    assert codes == {"ok": ("terminated", 0, "Completed"), "bad": ("terminated", 7, "Error")}
    assert (plan.pod_dir / "logs" / "bad.log").read_text() == "boom\n"


def test_failed_init_container_stops_the_pod_before_the_containers(tmp_path):
    plan = make_pod(
        tmp_path,
        [container("main", APPEND, args=["main"], **MOUNT)],
        init=[container("init", "import sys; sys.exit(3)")],
    )
    final = PodRun(plan, "127.0.0.1").start().wait(20)
    assert (final.phase, final.reason) == ("Failed", "InitFailed")
    assert final.init_containers[0].exit_code == 3
    assert final.containers[0].state == "waiting"
    assert not (plan.pod_dir / "volumes" / "shared" / "order").exists()


def test_on_failure_restarts_until_success(tmp_path):
    # Fails twice, then succeeds: the attempt count lives in the shared volume.
    code = (
        "import pathlib, sys; p = pathlib.Path('/shared/n');"
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1));"
        "sys.exit(0 if n >= 2 else 1)"
    )
    plan = make_pod(tmp_path, [container("main", code, **MOUNT)], restart="OnFailure")
    final = PodRun(plan, "127.0.0.1", backoff=FAST).start().wait(20)
    assert final.phase == "Succeeded"
    assert final.containers[0].restart_count == 2
    assert (plan.pod_dir / "volumes" / "shared" / "n").read_text() == "3"


def test_missing_program_is_a_start_error(tmp_path):
    plan = make_pod(tmp_path, [{"name": "main", "command": ["/no/such/binary"]}])
    final = PodRun(plan, "127.0.0.1").start().wait(20)
    assert final.phase == "Failed"
    c = final.containers[0]
    assert (c.reason, c.exit_code) == ("StartError", 128)
    assert "/no/such/binary" in c.message


def test_stop_ends_running_processes_within_the_grace_period(tmp_path):
    ready = threading.Event()
    plan = make_pod(
        tmp_path,
        [container("main", "import time; print('up', flush=True); time.sleep(60)")],
        restart="Always",
        grace=5,
    )
    run = PodRun(plan, "127.0.0.1", on_line=lambda name, line: ready.set()).start()
    assert ready.wait(20)
    assert run.state.phase == "Running"
    final = run.stop()
    assert final.containers[0].exit_code == 143  # SIGTERM, and no restart after a stop
    assert final.finished
    assert run.wait(0) == final


def test_stop_during_an_init_container_ends_the_pod_as_stopped(tmp_path):
    ready = threading.Event()
    plan = make_pod(
        tmp_path,
        [container("main", APPEND, args=["main"], **MOUNT)],
        init=[container("init", "import time; print('up', flush=True); time.sleep(60)")],
    )
    run = PodRun(plan, "127.0.0.1", on_line=lambda name, line: ready.set()).start()
    assert ready.wait(20)
    final = run.stop()
    assert (final.phase, final.reason) == ("Failed", "Stopped")
    assert final.init_containers[0].exit_code == 143
    assert final.containers[0].state == "waiting"
    assert not (plan.pod_dir / "volumes" / "shared" / "order").exists()


def test_a_replica_that_exits_0_while_being_stopped_succeeded(tmp_path):
    """A worker that finished as the master decided reads as succeeded, not Stopped."""
    ready = threading.Event()
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0));"
        "print('up', flush=True); time.sleep(60)"
    )
    plan = make_pod(tmp_path, [container("main", code)], grace=5)
    run = PodRun(plan, "127.0.0.1", on_line=lambda name, line: ready.set()).start()
    assert ready.wait(20)
    final = run.stop()
    assert (final.phase, final.reason) == ("Succeeded", "")
    assert final.containers[0].exit_code == 0
