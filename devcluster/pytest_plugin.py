"""pytest: one real control plane for the whole run, and the `cluster` fixture.

Enable with `pytest_plugins = ["devcluster.pytest_plugin"]` in a conftest.py.

The controlling process (xdist's, or the only one) starts the control plane built by
`make control-plane` in the background at configure time and tells every worker where its
kubeconfig will appear (`INCLUSTER_TEST_CONTROLPLANE_DIR`); the first `cluster` test waits
for it, so unit tests start at once. Not started when `INCLUSTER_TEST_KUBECONFIG` names a
cluster of your own, or with `INCLUSTER_TEST_CLUSTER=emulator` (every cluster test then
runs on the emulator, as before the control plane existed). If the binaries are missing
the cluster tests skip with the reason, except under CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster import controlplane
from devcluster.testing import (
    REAL_CLUSTER_ENV,
    SESSION_DATA,
    SESSION_DIR_ENV,
    Cluster,
    ControlPlaneUnavailable,
    session_kubeconfig,
)
from devcluster.testing import cluster as open_cluster

MODE_ENV = "INCLUSTER_TEST_CLUSTER"


class _SessionControlPlane:
    """Starts the control plane in a thread that stays alive as its children's parent.

    The children get PR_SET_PDEATHSIG, which fires when the *thread* that forked them
    ends; so the thread that starts them is the one that stops them, at unconfigure.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="incluster-test-cp-"))
        self.version = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controlplane", daemon=True)

    def start(self) -> _SessionControlPlane:
        self._thread.start()
        return self

    def _run(self) -> None:
        plane = controlplane.ControlPlane(data_dir=self.folder / SESSION_DATA)
        try:
            self.version = controlplane.version()
            plane.start()
            shutil.copyfile(plane.kubeconfig, self.folder / "kubeconfig.tmp")
            (self.folder / "kubeconfig.tmp").replace(self.folder / "kubeconfig")
            while not self._stop.wait(1.0):
                failure = plane.failure()
                if failure:  # later tests fail with this instead of timing out
                    (self.folder / "error").write_text(failure, encoding="utf-8")
                    return
        except Exception as e:
            (self.folder / "error").write_text(str(e), encoding="utf-8")
        finally:
            plane.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


_session: _SessionControlPlane | None = None
_ran_real = 0


def _wants_control_plane(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller started it
        return False
    if os.environ.get(REAL_CLUSTER_ENV) or os.environ.get(SESSION_DIR_ENV):
        return False
    if os.environ.get(MODE_ENV, "real") == "emulator" or config.option.collectonly:
        return False
    return "not cluster" not in (config.getoption("markexpr", "") or "")


def pytest_configure(config: pytest.Config) -> None:
    global _session
    if not _wants_control_plane(config):
        return
    _session = _SessionControlPlane().start()
    os.environ[SESSION_DIR_ENV] = str(_session.folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _session
    if _session is not None:
        _session.stop()
        os.environ.pop(SESSION_DIR_ENV, None)
        _session = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _ran_real
    # Module-scoped fixtures open clusters too, so count by marker: every cluster test
    # that ran while the session's control plane was up, except those on the emulator.
    keywords = report.keywords
    if report.when == "call" and not report.skipped and "cluster" in keywords:
        _ran_real += "emulator" not in keywords


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _session is None:
        return
    version = _session.version or "(not started)"
    terminalreporter.write_line(f"real control plane: {version}; {_ran_real} tests ran against it")


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A Kubernetes API for one test, in a namespace of its own.

    The session's real API server, or INCLUSTER_TEST_KUBECONFIG's cluster; the emulator
    only with INCLUSTER_TEST_CLUSTER=emulator. Sets KUBECONFIG, the `kubernetes` client's
    default kubeconfig location (read once at its import) and its default Configuration,
    all restored after the test.
    """
    yield from _for_test(request, tmp_path, emulator=False)


@pytest.fixture
def emulator_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The emulator, whatever the session has: for tests of what only it can do."""
    yield from _for_test(request, tmp_path, emulator=True)


def session_api() -> tuple[Path, Path | None] | None:
    """The real API server's kubeconfig (and our control plane's audit log), or None.

    For fixtures that start their own stacks on it; a control plane that could not start
    skips the test, or fails it under CI.
    """
    try:
        return session_kubeconfig(os.environ)
    except ControlPlaneUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"the real control plane is unavailable under CI: {e}")
        pytest.skip(f"the real control plane is unavailable: {e}")


def _for_test(
    request: pytest.FixtureRequest, tmp_path: Path, *, emulator: bool
) -> Iterator[Cluster]:
    import kubernetes

    monkeypatch = pytest.MonkeyPatch()
    try:
        context = open_cluster(tmp_path, emulator=emulator)
        try:
            handle = context.__enter__()
        except ControlPlaneUnavailable as e:
            if os.environ.get("CI"):
                pytest.fail(f"the real control plane is unavailable under CI: {e}")
            pytest.skip(f"the real control plane is unavailable: {e}")
        monkeypatch.setenv("KUBECONFIG", str(handle.kubeconfig))
        monkeypatch.setattr(
            kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(handle.kubeconfig)
        )
        previous = kubernetes.client.Configuration.get_default_copy()
        kubernetes.config.load_kube_config(config_file=str(handle.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            yield handle
        finally:
            kubernetes.client.Configuration.set_default(previous)
            context.__exit__(None, None, None)
    finally:
        monkeypatch.undo()
