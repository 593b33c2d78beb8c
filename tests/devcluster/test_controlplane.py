"""`python -m devcluster serve --real`: starts, answers kubectl, stops leaving nothing behind.

Each test starts a control plane of its own (about 4 s) because each ends it differently:
SIGTERM, SIGKILL of the launcher, a killed etcd, a taken port, a stale data dir.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import controlplane
from devcluster.testing import kubectl_binary, wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "experiments.incluster.dev.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(controlplane.missing_binaries()) and not os.environ.get("CI"),
        reason="the control plane is not built (make control-plane)",
    ),
]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (zombies excluded: they hold no resources)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def serve(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devcluster", "serve", "--real", "--kubeconfig",
         str(tmp_path / "kubeconfig"), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], set[int]]]:
    proc = serve(tmp_path, "--data-dir", str(tmp_path / "data"))
    try:
        wait_for(
            lambda: (tmp_path / "kubeconfig").exists() or proc.poll() is not None,
            timeout=90,
            message="the admin kubeconfig",
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        components = descendants(proc.pid)
        assert len(components) == 3, "etcd, kube-apiserver, kube-controller-manager"
        yield proc, components
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def kubectl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}
    return subprocess.run(
        [kubectl_binary(), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_real_api_answers_kubectl_and_sigterm_leaves_no_process(
    tmp_path: Path, started: tuple[subprocess.Popen[str], set[int]]
) -> None:
    proc, components = started
    assert "Server Version: v1." in kubectl(tmp_path, "version").stdout
    applied = kubectl(tmp_path, "apply", "--server-side", "-f", str(CRD))
    assert applied.returncode == 0, applied.stderr
    wait_for(
        lambda: "replicas" in kubectl(tmp_path, "explain", "xp.spec").stdout,
        timeout=30,
        message="kubectl explain xp.spec from the CRD's OpenAPI",
    )
    # RBAC is real: the namespace's default ServiceAccount may do nothing.
    sa = "system:serviceaccount:default:default"
    assert kubectl(tmp_path, "auth", "can-i", "list", "pods", f"--as={sa}").stdout.strip() == "no"
    assert kubectl(tmp_path, "auth", "can-i", "list", "pods").stdout.strip() == "yes"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert alive(components) == set()


def test_killing_the_launcher_takes_its_components_with_it(
    started: tuple[subprocess.Popen[str], set[int]],
) -> None:
    proc, components = started
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(components), timeout=15, message="components to die")


def test_a_killed_etcd_is_reported_and_the_rest_stopped(
    started: tuple[subprocess.Popen[str], set[int]],
) -> None:
    proc, components = started
    etcd = next(
        p for p in components if Path(f"/proc/{p}/cmdline").read_bytes().find(b"etcd\0") >= 0
    )
    os.kill(etcd, signal.SIGKILL)
    assert proc.wait(timeout=30) == 1
    assert proc.stderr is not None
    assert "etcd exited with code" in proc.stderr.read()
    assert alive(components) == set()


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve(tmp_path, "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"kube-apiserver port 127.0.0.1:{port} is in use" in err
    assert not (tmp_path / "kubeconfig").exists()


def test_a_stale_data_dir_is_refused_untouched(tmp_path: Path) -> None:
    stale = tmp_path / "data"
    (stale / "etcd").mkdir(parents=True)
    (stale / "etcd" / "keep").write_text("old")
    proc = serve(tmp_path, "--data-dir", str(stale))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "is not empty" in err
    assert "remove it or choose" in err
    assert (stale / "etcd" / "keep").read_text() == "old"


def test_missing_binaries_name_the_make_target_and_the_last_build_error(tmp_path: Path) -> None:
    (tmp_path / "build-error.txt").write_text('failed at step "download modules": proxy down')
    env = {**os.environ, controlplane.BIN_DIR_ENV: str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "devcluster", "serve", "--real"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "make control-plane" in proc.stderr
    assert "etcd" in proc.stderr
    assert 'The last build said: failed at step "download modules"' in proc.stderr


def test_the_build_without_go_names_the_step_and_the_retry(tmp_path: Path) -> None:
    if Path("/usr/bin/go").exists() or Path("/bin/go").exists():
        pytest.skip("this machine has go on the minimal PATH")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), controlplane.BIN_DIR_ENV: str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(REPO / "devcluster" / "build-control-plane.sh")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert 'failed at step "find Go"' in proc.stderr
    assert "Retry with: make control-plane" in proc.stderr
    assert "find Go" in (tmp_path / "build-error.txt").read_text()
