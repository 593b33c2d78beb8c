"""`incluster run` end to end: real replicas, real sockets, the SDK's event files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from incluster import cli, read_events
from incluster.tracking.events import Metric

from tests.local.helpers import ROOT, unique_example

REPLICAS = ["master-0", "ps-0", "worker-0", "worker-1"]


def run_cli(*args):
    return cli.main(["run", *map(str, args)])


def test_distributed_example_runs_locally(tmp_path, capsys):
    path, doc = unique_example(tmp_path)
    out = tmp_path / "out"
    code = run_cli(path, "--outputs", out, "--workdir", ROOT, "--color", "never")
    printed = capsys.readouterr().out
    assert code == 0, printed
    ns = doc["metadata"]["namespace"]
    (outputs,) = (out / ns / "examples" / "peers").iterdir()  # this run's directory
    assert f"run {outputs.name}: outputs in {outputs}" in printed
    # Every replica reached every other one and wrote its own event file and model.
    events = sorted(p.name for p in (outputs / "events").iterdir())
    assert events == [f"{r}.jsonl" for r in REPLICAS]
    for replica in REPLICAS:
        model = json.loads((outputs / f"model-{replica}.json").read_text())
        assert len(model["peers"]) == 3
        metrics = [
            e for e in read_events(outputs / "events" / f"{replica}.jsonl") if isinstance(e, Metric)
        ]
        assert {"peers_reached", "loss"} <= {m.name for m in metrics}
        assert [m.value for m in metrics if m.name == "peers_reached"] == [3]
    # Distinct loopback addresses, each replica's own identity, prefixed logs.
    for replica in REPLICAS:
        kind, index = replica.rsplit("-", 1)
        assert f"{replica:<8} | {kind}:{index}: exchanged greetings with" in printed
    assert "Succeeded: master 0 succeeded" in printed
    logs = out / ".incluster" / ns / "peers" / outputs.name / "pods" / ns
    (worker_dir,) = logs.glob("peers-worker-1-*")
    assert "done" in (worker_dir / "logs" / "main.log").read_text()


def test_failing_worker_fails_the_run_and_names_it(tmp_path, capsys):
    path, doc = unique_example(tmp_path)
    worker = doc["spec"]["replicas"]["worker"]["template"]["spec"]["containers"][0]
    worker["command"] = [
        sys.executable,
        "-c",
        "import json, os, sys; t = json.loads(os.environ['INCLUSTER_TASK_INFO']);"
        "sys.exit(1 if t['index'] == 1 else 0)",
    ]
    master = doc["spec"]["replicas"]["master"]["template"]["spec"]["containers"][0]
    master["command"] = [sys.executable, "-c", "import time; time.sleep(60)"]
    path.write_text(yaml.safe_dump(doc))
    code = run_cli(path, "--outputs", tmp_path / "out", "--color", "never", "--grace", "2")
    printed = capsys.readouterr().out
    assert code == 1
    assert (
        "Failed: pod peers-worker-1 failed (exit code 1, Error); restartPolicy is Never" in printed
    )
    assert "master-0 | * Stopped" in printed


def test_invalid_spec_is_refused_with_the_field(tmp_path, capsys):
    path, doc = unique_example(tmp_path)
    doc["spec"]["replicas"]["master"]["replicas"] = 2
    path.write_text(yaml.safe_dump(doc))
    assert run_cli(path, "--outputs", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "spec.replicas.master.replicas" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\napiVersion: v1\n", "exactly one document of kind Experiment"),
        ("a: [\n", "not valid YAML"),
        ("apiVersion: incluster.dev/v9\nkind: Experiment\nmetadata: {name: x}\n", "apiVersion"),
        ("apiVersion: incluster.dev/v1alpha1\nkind: Experiment\nspec: {}\n", "metadata.name"),
    ],
)
def test_bad_manifests(tmp_path, capsys, text, message):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    assert run_cli(path, "--outputs", tmp_path / "out") == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_stops_every_replica_even_when_pressed_twice(tmp_path):
    path, doc = unique_example(tmp_path)
    pids = tmp_path / "pids"
    pids.mkdir()
    # Replicas that ignore SIGTERM: stopping them takes the whole grace period.
    stubborn = [
        sys.executable,
        "-c",
        "import os, pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f"pathlib.Path({str(pids)!r}, str(os.getpid())).touch(); time.sleep(120)",
    ]
    for replica in doc["spec"]["replicas"].values():
        replica["template"]["spec"]["containers"][0]["command"] = stubborn
    path.write_text(yaml.safe_dump(doc))
    argv = [sys.executable, "-m", "incluster.cli", "run", str(path)]
    argv += ["--outputs", str(tmp_path / "out"), "--color", "never", "--grace", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while len(list(pids.iterdir())) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 4
    proc.send_signal(signal.SIGINT)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("interrupted (SIGINT): stopping every replica (SIGKILL after 1s)"):
            break
    proc.send_signal(signal.SIGINT)  # while the replicas are being stopped
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, "".join(lines) + out
    assert "Traceback" not in out
    for pid in started:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_run_is_listed_by_the_sdk_cli(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "run" in capsys.readouterr().out


def test_without_the_operator_extra_the_command_says_how_to_install_it(capsys):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli._missing_extra("run", ImportError("No module named 'pydantic'"))(sub)
    args = parser.parse_args(["run", "x.yaml", "--outputs", "o"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert "pip install 'incluster[operator]'" in err
    assert "pydantic" in err


def test_exit_code_policy_recreates_a_killed_worker(tmp_path, capsys):
    """The operator's rules decide: a retryable exit (>= 128) recreates the pod."""
    path, doc = unique_example(tmp_path)
    marker = tmp_path / "killed-once"
    flaky = (
        "import os, pathlib, sys, json; t = json.loads(os.environ['INCLUSTER_TASK_INFO']);"
        f"m = pathlib.Path({str(marker)!r});"
        "first = t['index'] == 1 and not m.exists(); m.touch() if first else None;"
        "sys.exit(137 if first else 0)"
    )
    for kind in ("master", "worker", "ps"):
        replica = doc["spec"]["replicas"][kind]
        replica["template"]["spec"]["containers"][0]["command"] = [sys.executable, "-c", flaky]
    doc["spec"]["replicas"]["worker"]["restartPolicy"] = "ExitCode"
    doc["spec"]["runPolicy"] = {"backoffLimit": 1, "successPolicy": "allWorkers"}
    path.write_text(yaml.safe_dump(doc))
    code = run_cli(path, "--outputs", tmp_path / "out", "--color", "never")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "PodRecreated: pod peers-worker-1 failed (exit code 137" in printed
    assert "Succeeded: all 3 master/chief and worker pods succeeded" in printed


def test_a_local_replica_does_not_try_to_reach_an_api(tmp_path, monkeypatch):
    """The master's env under `incluster run` has a context but no API: no summary sync."""
    from incluster.tracking import sync
    from incluster_operator.local.plan import materialise
    from incluster_operator.local.runner import Options, load_manifest, prepare

    path, _ = unique_example(tmp_path)
    prepared = prepare(load_manifest(path), Options(outputs=tmp_path / "o", workdir=tmp_path))
    plan = prepared.plan(("master", 0), "uid-1")
    materialise(plan)
    env = dict(plan.containers[0].env)
    for name in list(os.environ):
        if name.startswith(("INCLUSTER_", "KUBERNETES_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert sync.is_summary_writer(sync.context.get_cluster_def(), sync.context.get_task_info())
    assert sync.start_for(lambda: 0, dict, environ=env) is None


def test_data_stores_are_given_as_local_directories(tmp_path, capsys):
    store = tmp_path / "mnist"
    store.mkdir()
    (store / "train.csv").write_text("1,2,3\n")
    path, doc = unique_example(tmp_path)
    read = (
        "import json, os, pathlib; d = json.loads(os.environ['INCLUSTER_RUN_DATA_PATHS']);"
        "print('data:', pathlib.Path(d['mnist'], 'train.csv').read_text().strip())"
    )
    doc["spec"]["replicas"] = {"master": doc["spec"]["replicas"]["master"]}
    doc["spec"]["replicas"]["master"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable, "-c", read,
    ]  # fmt: skip
    doc["spec"]["data"] = ["mnist"]
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    assert run_cli(path, "--outputs", out, "--color", "never") == 2  # unknown store
    assert "spec.data[0]: unknown data store 'mnist'" in capsys.readouterr().err
    code = run_cli(path, "--outputs", out, "--color", "never", "--data", f"mnist={store}")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "master-0 | data: 1,2,3" in printed


def test_active_deadline_fails_the_run_as_the_operator_would(tmp_path, capsys):
    path, doc = unique_example(tmp_path)
    for replica in doc["spec"]["replicas"].values():
        replica["template"]["spec"]["containers"][0]["command"] = [
            sys.executable, "-c", "import time; time.sleep(120)",
        ]  # fmt: skip
    doc["spec"]["runPolicy"] = {"activeDeadlineSeconds": 1}
    path.write_text(yaml.safe_dump(doc))
    code = run_cli(path, "--outputs", tmp_path / "out", "--color", "never", "--grace", "2")
    printed = capsys.readouterr().out
    assert code == 1
    assert "ran longer than runPolicy.activeDeadlineSeconds=1" in printed
    assert printed.count("* Stopped") == 4


def test_other_commands_do_not_import_the_operator():
    code = (
        "import sys; from incluster import cli; cli.build_parser(['metrics', 'x']);"
        "print('incluster_operator' in sys.modules, 'pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_addresses_already_in_use_are_refused_before_starting(tmp_path, capsys):
    import socket

    from incluster_operator.local.runner import Options, load_manifest, prepare

    path, doc = unique_example(tmp_path)
    prepared = prepare(load_manifest(path), Options(outputs=tmp_path / "o", workdir=tmp_path))
    host = prepared.addresses[("worker", 1)]
    port = doc["spec"]["replicas"]["worker"]["port"]
    with socket.socket() as squatter:
        squatter.bind((host, port))
        squatter.listen()
        assert run_cli(path, "--outputs", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{host}:{port} already in use" in err
    assert not (tmp_path / "out" / ".incluster").exists()


def test_connections_left_in_time_wait_do_not_block_the_next_run(tmp_path):
    """A peer connection of a finished run lingers in TIME_WAIT on the replica's address;
    a rerun of the same experiment must not mistake it for a listener."""
    import socket

    from incluster_operator.local.runner import Options, busy_addresses, load_manifest, prepare

    path, doc = unique_example(tmp_path)
    prepared = prepare(load_manifest(path), Options(outputs=tmp_path / "o", workdir=tmp_path))
    host = prepared.addresses[("master", 0)]
    port = doc["spec"]["replicas"]["master"]["port"]
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen()
        client = socket.create_connection((host, port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    assert busy_addresses(prepared) == []


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_each_stop_signal_stops_every_replica_and_what_they_spawned(tmp_path, sig, code):
    """A CI timeout (SIGTERM), a closed terminal (SIGHUP) or Ctrl-C: no process survives."""
    path, doc = unique_example(tmp_path)
    pids = tmp_path / "pids"
    pids.mkdir()
    # Each replica starts a grandchild; the master also ignores SIGTERM (SIGKILL needed).
    spawn = (
        "import os, pathlib, signal, subprocess, sys, time;"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN) if 'master' in os.environ"
        "['INCLUSTER_TASK_INFO'] else None;"
        f"[pathlib.Path({str(pids)!r}, str(p)).touch() for p in (os.getpid(), kid.pid)];"
        "time.sleep(120)"
    )
    for replica in doc["spec"]["replicas"].values():
        replica["template"]["spec"]["containers"][0]["command"] = [sys.executable, "-c", spawn]
    path.write_text(yaml.safe_dump(doc))
    argv = [sys.executable, "-m", "incluster.cli", "run", str(path)]
    argv += ["--outputs", str(tmp_path / "out"), "--color", "never", "--grace", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while len(list(pids.iterdir())) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 8
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code, out
    assert f"interrupted ({signal.Signals(sig).name}): stopping every replica" in out
    assert "Traceback" not in out
    survivors = [pid for pid in started if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
    assert survivors == []


def test_hyperparameters_with_dollars_reach_the_process_unchanged(tmp_path, capsys):
    """The local runner expands env as the kubelet does; the operator's escaping undoes it."""
    from tests.e2e.test_e2e_chain import DOLLARS, SAME_AS_FILE

    path, doc = unique_example(tmp_path)
    doc["spec"]["replicas"] = {"master": doc["spec"]["replicas"]["master"]}
    container = doc["spec"]["replicas"]["master"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c", SAME_AS_FILE]
    doc["spec"]["declarations"] = DOLLARS
    doc["spec"]["logLevel"] = "$(HOME)"
    path.write_text(yaml.safe_dump(doc))
    code = run_cli(path, "--outputs", tmp_path / "out", "--color", "never")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert json.dumps(dict(sorted(DOLLARS.items()))) in printed
