"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, kube-controller-manager.

The binaries are upstream's, built from the versions pinned in ``devcluster/upstream/go.mod``
by ``make control-plane`` into ``.cache/controlplane/`` (``INCLUSTER_CONTROLPLANE_BIN``
overrides the folder). Each start makes a fresh CA, fresh client certificates and a fresh
ServiceAccount signing key in its data directory, so TLS, RBAC, TokenRequest and
TokenReview behave as on any cluster. Children die with this process (``PR_SET_PDEATHSIG``)
and ``stop()`` ends them in reverse order, so nothing is left running.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devcluster import pki
from devcluster.kubeconfig import write_kubeconfig

REPO = Path(__file__).resolve().parents[1]
#: Where `make control-plane` puts the binaries.
DEFAULT_BIN_DIR = REPO / ".cache" / "controlplane"
BIN_DIR_ENV = "INCLUSTER_CONTROLPLANE_BIN"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
#: The controllers a test cluster needs (issue: GC, namespaces, ServiceAccounts, root CA).
#: No node-lifecycle controller: the pod runner is a node without heartbeats.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "pod-garbage-collector-controller",
)
SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"
LOG_TAIL = 2000


class ControlPlaneError(RuntimeError):
    """The control plane cannot be built, found, started or kept running; the text says why."""


def bin_dir() -> Path:
    return Path(os.environ.get(BIN_DIR_ENV) or DEFAULT_BIN_DIR)


def missing_binaries(directory: Path | None = None) -> list[str]:
    directory = directory or bin_dir()
    return [c for c in COMPONENTS if not os.access(directory / c, os.X_OK)]


def require_binaries(directory: Path | None = None) -> Path:
    directory = directory or bin_dir()
    missing = missing_binaries(directory)
    if missing:
        build_error = directory / "build-error.txt"
        why = build_error.read_text(errors="replace").strip() if build_error.exists() else ""
        raise ControlPlaneError(
            f"{', '.join(missing)} not found in {directory}: build them with "
            "`make control-plane` (needs Go and the Go module proxy; about 5-10 minutes "
            f"the first time), or point {BIN_DIR_ENV} at a folder that has them"
            + (f". The last build said: {why}" if why else "")
        )
    return directory


def version(directory: Path | None = None) -> str:
    """The pinned kube-apiserver's own `--version` line."""
    binary = require_binaries(directory) / "kube-apiserver"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or out.stderr.strip()


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int, what: str) -> None:
    """Fail clearly before a component fails obscurely on a taken port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ControlPlaneError(
                    f"{what} port {host}:{port} is in use: stop what listens there "
                    "(`ss -ltnp`) or choose another port"
                ) from None
            raise


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The kernel kills the child when our thread ends, even when we are SIGKILLed."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a test cluster's data is throwaway


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL:]

    def failure(self) -> str | None:
        code = self.popen.poll()
        if code is None:
            return None
        return f"{self.name} exited with code {code}; the end of {self.log}:\n{self.tail()}"


@dataclass
class ControlPlane:
    """Start with ``start()`` (or ``with``); ``kubeconfig`` is an admin's (system:masters)."""

    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    binaries: Path | None = None
    url: str = ""
    kubeconfig: Path = field(default=Path())
    _procs: list[_Process] = field(default_factory=list)
    _owns_dir: bool = False
    _ca: pki.Authority | None = None

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start ------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> ControlPlane:
        binaries = require_binaries(self.binaries)
        self._prepare_dir()
        assert self.data_dir is not None
        try:
            self._start(binaries, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_dir(self) -> None:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="devcluster-real-"))
            self._owns_dir = True
        elif self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ControlPlaneError(
                f"data dir {self.data_dir} is not empty (a stale cluster's data?): "
                "remove it or choose an empty or new folder"
            )
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)

    def _start(self, binaries: Path, timeout: float) -> None:
        assert self.data_dir is not None
        deadline = time.monotonic() + timeout
        pki_dir = self.data_dir / "pki"
        ca = self._ca = pki.authority(pki_dir)
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            hosts=(*pki.API_DNS_NAMES, self.host, "10.0.0.1"),
        )
        admin = ca.issue("admin", "devcluster-admin", org="system:masters")
        kcm = ca.issue("controller-manager", "system:kube-controller-manager")
        sa = pki.service_account_keys(pki_dir)

        port = self.port or free_port(self.host)
        check_port(self.host, port, "kube-apiserver")
        etcd_port, peer_port = free_port(self.host), free_port(self.host)
        self.url = f"https://{self.host}:{port}"
        etcd_url = f"http://{self.host}:{etcd_port}"

        self._spawn(
            binaries / "etcd",
            "etcd",
            [
                "--name=devcluster",
                f"--data-dir={self.data_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{self.host}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{self.host}:{peer_port}",
                f"--initial-cluster=devcluster=http://{self.host}:{peer_port}",
                "--unsafe-no-fsync",  # a test cluster's data dies with it; fsync only slows
                "--log-level=warn",
            ],
        )
        self._wait(deadline, "etcd to be healthy", lambda: _etcd_healthy(etcd_url))

        self._spawn(
            binaries / "kube-apiserver",
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={port}",
                f"--cert-dir={pki_dir}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--kubelet-client-certificate={admin.cert}",
                f"--kubelet-client-key={admin.key}",
                # The pod runner's Node has no resolvable hostname: reach its log endpoint
                # (`kubectl logs`) on the address it registers.
                "--kubelet-preferred-address-types=InternalIP",
                # The apiserver's own Endpoints would name a loopback address, which
                # validation refuses; nothing in a test needs them.
                "--endpoint-reconciler-type=none",
                f"--audit-log-path={audit_log_path(self.data_dir)}",
                f"--audit-policy-file={_audit_policy(self.data_dir)}",
                "--profiling=false",
                "--v=0",
            ],
        )
        self.kubeconfig = write_kubeconfig(
            self.data_dir / "admin.kubeconfig",
            self.url,
            ca=ca.cert,
            client=(admin.cert, admin.key),
        )
        context = _tls_context(ca.cert, admin)
        self._wait(
            deadline,
            "kube-apiserver /readyz",
            lambda: _get(f"{self.url}/readyz", context) is not None,
        )

        kcm_config = write_kubeconfig(
            self.data_dir / "controller-manager.kubeconfig",
            self.url,
            ca=ca.cert,
            client=(kcm.cert, kcm.key),
        )
        self._spawn(
            binaries / "kube-controller-manager",
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm_config}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--root-ca-file={ca.cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=true",  # one identity per controller, as kubeadm
                "--v=0",
            ],
        )
        # The controllers are up once the default namespace has its ServiceAccount.
        self._wait(
            deadline,
            "kube-controller-manager to create the default ServiceAccount",
            lambda: (
                _get(f"{self.url}/api/v1/namespaces/default/serviceaccounts/default", context)
                is not None
            ),
        )

    def _spawn(self, binary: Path, name: str, args: Sequence[str]) -> None:
        assert self.data_dir is not None
        log = self.data_dir / "logs" / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(_Process(name, popen, log))

    def _wait(self, deadline: float, what: str, ready: object) -> None:
        assert callable(ready)
        while True:
            failure = self.failure()
            if failure:
                raise ControlPlaneError(f"while waiting for {what}: {failure}")
            if ready():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in self._procs)
                raise ControlPlaneError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.1)

    def kubeconfig_for(self, user: str, group: str | None = None) -> Path:
        """A kubeconfig with a client certificate for ``user`` (in ``group``, if given).

        Another identity beside the admin's: its requests are told apart in the audit log
        (the benchmarks count the operator's writes this way), and RBAC applies to it.
        """
        assert self._ca is not None, "start() first"
        assert self.data_dir is not None
        pair = self._ca.issue(f"user-{user}", user, org=group)
        return write_kubeconfig(
            self.data_dir / f"{user}.kubeconfig",
            self.url,
            ca=self._ca.cert,
            client=(pair.cert, pair.key),
        )

    # -- run and stop -----------------------------------------------------------------

    def failure(self) -> str | None:
        """A message if any component has exited (a killed etcd, a crash), else None."""
        for proc in self._procs:
            message = proc.failure()
            if message:
                return message
        return None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM in reverse start order, SIGKILL after ``grace``; then remove our data."""
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self._procs.clear()
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def audit_log(self) -> Path:
        assert self.data_dir is not None
        return audit_log_path(self.data_dir)


def audit_log_path(data_dir: Path) -> Path:
    """Where a control plane started on ``data_dir`` writes its audit log."""
    return data_dir / "logs" / "audit.log"


def _get(url: str, context: ssl.SSLContext | None = None) -> bytes | None:
    """The body of a 200 answer from one of our own components; None for anything else."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:  # noqa: S310
            return bytes(r.read()) if r.status == 200 else None
    except (OSError, urllib.error.URLError):
        return None


def _etcd_healthy(url: str) -> bool:
    return b'"health":"true"' in (_get(f"{url}/health") or b"")


def _tls_context(ca: Path, client: pki.Pair) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _audit_policy(data_dir: Path) -> Path:
    """Audit every write, and every request a ServiceAccount makes, at Metadata level.

    Tests and benchmarks count requests from this log (devcluster.audit) the way one
    would on any cluster; the control plane's own traffic and reads by admins are left
    out to keep it small.
    """
    path = data_dir / "audit-policy.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\n"
        "kind: Policy\n"
        "omitStages: [RequestReceived]\n"
        "rules:\n"
        "- level: None\n"
        "  users: [system:apiserver, system:kube-controller-manager]\n"
        "- level: None\n"
        "  userGroups: [system:serviceaccounts:kube-system]\n"
        "- level: Metadata\n"
        "  userGroups: [system:serviceaccounts]\n"
        "- level: Metadata\n"
        "  verbs: [create, update, patch, delete, deletecollection]\n"
        "- level: None\n",
        encoding="utf-8",
    )
    return path
