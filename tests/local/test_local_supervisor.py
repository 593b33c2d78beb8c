"""The process supervisor with real processes: exit codes, logs, groups, stopping."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from incluster_operator.local import supervisor


def py(code):
    return [sys.executable, "-c", code]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_exit_code_and_log(tmp_path):
    log = tmp_path / "logs" / "c.log"
    proc = supervisor.start(
        py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"), {}, None, log
    )
    result = proc.wait(10)
    assert result is not None
    assert (result.code, result.signal) == (3, None)
    assert result.finished_at >= result.started_at
    assert sorted(log.read_text().split()) == ["err", "out"]
    # A restart appends to the same log.
    supervisor.start(py("print('again')"), {}, None, log).wait(10)
    assert log.read_text().split()[-1] == "again"


def test_env_and_cwd_are_exactly_what_was_planned(tmp_path):
    log = tmp_path / "c.log"
    proc = supervisor.start(
        py("import os, json; print(json.dumps([dict(os.environ), os.getcwd()]))"),
        {"ONLY": "this"},
        tmp_path,
        log,
    )
    assert proc.wait(10).code == 0
    import json

    env, cwd = json.loads(log.read_text())
    assert env.get("ONLY") == "this"
    assert "HOME" not in env
    assert cwd == str(tmp_path)


def test_lines_are_teed_to_the_callback(tmp_path):
    lines = []
    proc = supervisor.start(
        py("for i in range(3): print(i, flush=True)"),
        {},
        None,
        tmp_path / "c.log",
        on_line=lines.append,
    )
    assert proc.wait(10).code == 0
    assert lines == [b"0\n", b"1\n", b"2\n"]
    assert (tmp_path / "c.log").read_bytes() == b"0\n1\n2\n"


def test_stop_terms_then_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, signal, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = supervisor.start(py(code), {}, None, tmp_path / "c.log")
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text())
    grandchild = int(pidfile.read_text())
    result = proc.stop(grace=0.2)  # SIGTERM is ignored: SIGKILL after the grace period
    assert (result.code, result.signal) == (128 + signal.SIGKILL, signal.SIGKILL)
    assert wait_for(lambda: not _alive(grandchild))


def test_stop_with_sigterm_honoured(tmp_path):
    proc = supervisor.start(
        py("import time; print('up', flush=True); time.sleep(60)"), {}, None, tmp_path / "c.log"
    )
    assert wait_for(lambda: (tmp_path / "c.log").read_text() == "up\n")
    assert proc.poll() is None
    result = proc.stop(grace=10)
    assert (result.code, result.signal) == (143, signal.SIGTERM)
    assert proc.poll() == result


def test_grandchildren_die_when_the_main_process_exits(tmp_path):
    pidfile = tmp_path / "gc.pid"
    code = (
        "import subprocess, sys, pathlib\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
    )
    proc = supervisor.start(py(code), {}, None, tmp_path / "c.log", on_line=lambda _: None)
    assert proc.wait(10).code == 0  # the pump does not hang on the grandchild's pipe
    assert wait_for(lambda: not _alive(int(pidfile.read_text())))


def test_missing_program_is_a_start_error(tmp_path):
    with pytest.raises(supervisor.StartError, match="no-such-program"):
        supervisor.start(["no-such-program"], {"PATH": "/nonexistent"}, None, tmp_path / "c.log")
    with pytest.raises(supervisor.StartError, match="missing-dir"):
        supervisor.start(py("pass"), {}, tmp_path / "missing-dir", tmp_path / "c.log")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (reaped by init later).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
