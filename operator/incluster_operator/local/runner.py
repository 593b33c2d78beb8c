"""`incluster run`: every replica of an Experiment as local processes, no cluster needed.

The Experiment goes through the operator's own ``validate`` and ``render_all`` with
loopback addressing, so each replica gets exactly the pod (env, mounts, context files)
the operator would create, with its own ``127.x.y.z`` address and its declared port.
The pods are then planned and run by the same machinery as the dev cluster's pod runner.
Outputs land under ``<outputs>/<namespace>/<project>/[<group>/]<experiment>``, as the
SDK reports them, and each pod's directory (context files, logs) under
``<outputs>/.incluster/<namespace>/<experiment>/pods/``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from incluster_operator.api import API_VERSION, KIND, ExperimentSpec, names, validate
from incluster_operator.local.address import replica_address
from incluster_operator.local.console import Console
from incluster_operator.local.errors import PodSpecError
from incluster_operator.local.lookups import StaticLookups, config_map_bytes
from incluster_operator.local.plan import Layout, Node, PodPlan, inherited_env, plan_pod
from incluster_operator.local.podrun import PodRun
from incluster_operator.local.state import PodState, pod_status
from incluster_operator.render import ExperimentMeta, render_all
from incluster_operator.render.context import outputs_subpath
from incluster_operator.settings import Settings, VolumeSource
from incluster_operator.status import reconcile

#: A replica: (task type, index).
Replica = tuple[str, int]
#: Exit code after Ctrl-C, as a shell reports a SIGINT death.
INTERRUPTED = 130
#: hostPath names the local settings give the stores; mapped to local directories.
OUTPUTS_HOST_PATH = "/incluster-local/outputs"
DATA_HOST_PATH = "/incluster-local/data"


class ManifestError(ValueError):
    """The file is not one Experiment manifest; the message says what to fix."""


@dataclass(frozen=True)
class Manifest:
    name: str
    namespace: str
    #: The raw spec, validated by ``prepare`` with the operator's own ``validate``.
    spec: Any


def load_manifest(path: Path) -> Manifest:
    """The single Experiment in a YAML file (other documents are refused, not ignored)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
    if len(experiments) != 1 or len(documents) != 1:
        raise ManifestError(
            f"{path}: expected exactly one document of kind {KIND} (apiVersion {API_VERSION}), "
            f"found {len(documents)} document(s) of which {len(experiments)} Experiment(s)"
        )
    doc = experiments[0]
    if doc.get("apiVersion") != API_VERSION:
        raise ManifestError(
            f"{path}: apiVersion {doc.get('apiVersion')!r} is not {API_VERSION!r}; fix apiVersion"
        )
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{path}: metadata.name is missing; give the experiment a name")
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str):
        raise ManifestError(f"{path}: metadata.namespace must be a string")
    return Manifest(name, namespace, doc.get("spec"))


@dataclass(frozen=True)
class Options:
    """Where a local run writes, and where its data stores are."""

    outputs: Path
    workdir: Path
    data: Mapping[str, Path] = field(default_factory=dict)
    #: Seconds a replica gets to exit after SIGTERM before SIGKILL.
    grace: float = 10.0
    #: Object-store URL of the outputs (``--outputs s3://...``); ``outputs`` then only
    #: stages the local copy the replicas write before the SDK uploads it.
    outputs_url: str | None = None


#: Env name prefixes of the object stores' standard credentials and endpoints. A local
#: run with an outputs URL hands the user's own to the replicas (on one machine the
#: user's environment is the pods' environment); without a URL they stay out.
STORE_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCE_", "AZURE_", "FSSPEC_")


def store_env(options: Options) -> dict[str, str]:
    """The credential and endpoint variables replicas need to reach the outputs URL."""
    if options.outputs_url is None:
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith(STORE_ENV_PREFIXES)}


def local_settings(options: Options) -> Settings:
    """The operator's settings for one machine: loopback addresses, local stores."""
    return Settings(
        addressing="loopback",
        outputs=VolumeSource(host_path=OUTPUTS_HOST_PATH),
        outputs_url=options.outputs_url,
        data_stores={
            name: VolumeSource(host_path=f"{DATA_HOST_PATH}/{name}") for name in options.data
        },
    )


@dataclass(frozen=True)
class Prepared:
    """A validated and rendered local run, every pod planned once: ready to start."""

    manifest: Manifest
    spec: ExperimentSpec
    meta: ExperimentMeta
    settings: Settings
    pods: Mapping[Replica, dict[str, Any]]
    lookups: StaticLookups
    layout: Layout
    workdir: Path
    addresses: Mapping[Replica, str]
    outputs_path: Path
    state_dir: Path
    #: What every container starts from: the inherited env, plus store credentials.
    base_env: Mapping[str, str] = field(default_factory=dict)

    def plan(self, replica: Replica, uid: str) -> PodPlan:
        """The replica's pod as this machine runs it; ``uid`` names a fresh pod directory."""
        pod = self.pods[replica]
        pod = {**pod, "metadata": {**pod["metadata"], "uid": uid}}
        node = Node(pod_ip=self.addresses[replica])
        return plan_pod(
            pod,
            self.lookups,
            self.layout,
            node=node,
            workdir=self.workdir,
            base_env=self.base_env or None,
        )


def prepare(manifest: Manifest, options: Options) -> Prepared:
    """Validate and render with the operator's code, then plan every pod.

    Raises InvalidSpec (the operator's message, naming the field) or PodSpecError.
    """
    settings = local_settings(options)
    spec = validate(manifest.spec, manifest.name, settings)
    meta = ExperimentMeta(manifest.name, manifest.namespace, str(uuid.uuid4()))
    children = render_all(spec, meta, settings)
    cm = children.config_map
    lookups = StaticLookups(
        config_maps={(manifest.namespace, cm["metadata"]["name"]): config_map_bytes(cm)}
    )
    outputs = options.outputs.absolute()
    state_dir = outputs / ".incluster" / manifest.namespace / manifest.name
    host_paths = {OUTPUTS_HOST_PATH: outputs}
    host_paths.update({f"{DATA_HOST_PATH}/{n}": d.absolute() for n, d in options.data.items()})
    layout = Layout(state_dir, host_paths=host_paths)
    pods: dict[Replica, dict[str, Any]] = {}
    addresses: dict[Replica, str] = {}
    for pod in children.pods:
        labels = pod["metadata"]["labels"]
        replica = (labels[names.LABEL_REPLICA_TYPE], int(labels[names.LABEL_REPLICA_INDEX]))
        pods[replica] = pod
        try:
            first = plan_pod(pod, lookups, layout, workdir=options.workdir)
        except PodSpecError as error:
            if not error.retriable:
                raise
            # Nothing will create the object later: fail now rather than wait forever.
            raise PodSpecError(
                error.field,
                f"{str(error).split(': ', 1)[-1]}; a local run has only the objects the "
                "operator renders (Service, context ConfigMap, pods): remove the reference",
            ) from None
        addresses[replica] = replica_address(first) or "127.0.0.1"
    return Prepared(
        manifest=manifest,
        spec=spec,
        meta=meta,
        settings=settings,
        pods=pods,
        lookups=lookups,
        layout=layout,
        workdir=options.workdir,
        addresses=addresses,
        outputs_path=outputs / outputs_subpath(spec, meta),
        state_dir=state_dir,
        base_env={**inherited_env(), **store_env(options)} if options.outputs_url else {},
    )


def busy_addresses(prepared: Prepared) -> list[str]:
    """Replica addresses (``host:port``) something on this machine already listens on.

    Checked before starting, so a second run of the same experiment (same loopback
    addresses) fails with a clear message instead of a replica's bind error. The probe
    sets SO_REUSEADDR, as servers do, so that connections of a finished run lingering
    in TIME_WAIT are not mistaken for a listener (Linux still refuses a live one).
    """
    busy = []
    for (task_type, _index), host in sorted(prepared.addresses.items()):
        port = prepared.spec.replicas[task_type].port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(f"{host}:{port}")
    return busy


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT for the duration (main thread only: signals are set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def label(replica: Replica) -> str:
    return f"{replica[0]}-{replica[1]}"


@dataclass(frozen=True)
class Outcome:
    phase: str
    message: str

    @property
    def exit_code(self) -> int:
        return 0 if self.phase == "Succeeded" else 1


@dataclass
class _Pod:
    uid: str
    run: PodRun


@dataclass
class LocalRun:
    """Runs a prepared experiment to its outcome; ``run()`` returns the exit code.

    The decisions are the operator's own (``status.reconcile``): the run keeps the
    replicas' pods as API objects with the status a kubelet would report, asks reconcile
    what to do, and does it (create, delete to recreate, finish), so success policy,
    restart policies, ``backoffLimit`` and ``activeDeadlineSeconds`` behave as in a cluster.
    """

    prepared: Prepared
    console: Console
    grace: float = 10.0
    _events: queue.Queue[tuple[Replica, str, PodState]] = field(default_factory=queue.Queue)
    _pods: dict[Replica, _Pod] = field(default_factory=dict)

    def run(self) -> int:
        """Start every replica, follow them to the outcome, stop the rest; Ctrl-C stops all."""
        p = self.prepared
        shutil.rmtree(p.state_dir / "pods", ignore_errors=True)
        try:
            outcome = self._follow()
        except KeyboardInterrupt:
            # A second Ctrl-C must not abandon half-stopped replicas: ignore it from now on.
            with _sigint_ignored():
                self.console.message(
                    f"interrupted: stopping every replica (SIGKILL after {self.grace:g}s) ..."
                )
                self._stop(list(self._pods))
                self.console.close()
            return INTERRUPTED
        self._stop(list(self._pods))
        self.console.close()
        self.console.message(f"{outcome.phase}: {outcome.message}")
        self.console.message(f"outputs: {p.outputs_path}")
        self.console.message(f"logs: {p.state_dir / 'pods'}")
        return outcome.exit_code

    def _start(self, replica: Replica) -> None:
        uid = str(uuid.uuid4())
        plan = self.prepared.plan(replica, uid)
        run = PodRun(
            plan,
            self.prepared.addresses[replica],
            on_change=partial(self._changed, replica, uid),
            on_line=partial(self._printed, replica),
            max_grace=self.grace,
        )
        self._pods[replica] = _Pod(uid, run)
        run.start()

    def _stop(self, replicas: list[Replica]) -> None:
        """Stop the replicas' processes in parallel (each gets its grace period)."""
        runs = [(r, self._pods[r].run) for r in replicas if r in self._pods]
        threads = [threading.Thread(target=run.stop, daemon=True) for _, run in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for replica, run in runs:
            self.console.status(label(replica), run.state)

    def _changed(self, replica: Replica, uid: str, state: PodState) -> None:
        self._events.put((replica, uid, state))

    def _printed(self, replica: Replica, _container: str, line: bytes) -> None:
        self.console.line(label(replica), line)

    def _objects(self) -> list[dict[str, Any]]:
        """The pods as the API would hold them: rendered object, uid, kubelet status."""
        out = []
        for replica, pod in self._pods.items():
            rendered = self.prepared.pods[replica]
            out.append(
                {
                    **rendered,
                    "metadata": {**rendered["metadata"], "uid": pod.uid},
                    "status": pod_status(pod.run.state),
                }
            )
        return out

    def _follow(self) -> Outcome:
        p = self.prepared
        previous: dict[str, Any] | None = None
        for replica in sorted(p.pods):
            self._start(replica)
        while True:
            try:
                replica, uid, state = self._events.get(timeout=1.0)
            except queue.Empty:
                for r, pod in self._pods.items():  # refresh running ages on screen
                    self.console.status(label(r), pod.run.state)
            else:
                current = self._pods.get(replica)
                if current is None or current.uid != uid:
                    continue  # a deleted pod's late news
                self.console.status(label(replica), state)
            decision = reconcile(
                p.spec, p.meta, self._objects(), previous, datetime.now(UTC), p.settings
            )
            status = decision.status
            previous = status.model_dump(mode="json", by_alias=True, exclude_none=True)
            if status.phase in ("Succeeded", "Failed"):
                condition = next((c for c in status.conditions if c.type == status.phase), None)
                return Outcome(status.phase, condition.message if condition else status.phase)
            by_name = {pod["metadata"]["name"]: r for r, pod in p.pods.items()}
            doomed = [by_name[n] for n in decision.delete if n in by_name]
            for event in decision.events:
                if event.type == "Warning":
                    self.console.message(f"{event.reason}: {event.message}")
            self._stop(doomed)
            for replica in doomed:
                self._pods.pop(replica, None)
            for replica in decision.create:
                if replica not in self._pods:
                    self._start(replica)
