"""`incluster run`: every replica of an Experiment as local processes, no cluster needed.

The Experiment goes through the operator's own ``validate`` and ``render_all`` with
loopback addressing, so each replica gets exactly the pod (env, mounts, context files)
the operator would create, with its own ``127.x.y.z`` address and its declared port.
The pods are then planned and run by the same machinery as the dev cluster's pod runner.
Every invocation is its own run with a fresh id (``experiment_uuid``): outputs land
under ``<outputs>/<namespace>/<project>/[<group>/]<experiment>/<run-id>``, as the SDK
reports them, and each pod's directory (context files, logs) under
``<outputs>/.incluster/<namespace>/<experiment>/<run-id>/pods/``. An earlier run's files
are never written, moved or deleted.
"""

from __future__ import annotations

import contextlib
import os
import queue
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
from incluster.contract import DIR_EVENTS
from incluster.tracking.runs import LEGACY, list_runs

from incluster_operator.api import API_VERSION, KIND, ExperimentSpec, InvalidSpec, names, validate
from incluster_operator.local.address import replica_address
from incluster_operator.local.console import Console
from incluster_operator.local.errors import PodSpecError
from incluster_operator.local.lookups import StaticLookups, config_map_bytes
from incluster_operator.local.plan import Layout, Node, PodPlan, inherited_env, plan_pod
from incluster_operator.local.podrun import PodRun
from incluster_operator.local.state import PodState, pod_status
from incluster_operator.render import ExperimentMeta, render_all
from incluster_operator.render.context import (
    outputs_subpath,
    ref_experiment_subpath,
    run_id,
)
from incluster_operator.settings import Settings, VolumeSource
from incluster_operator.status import reconcile

#: A replica: (task type, index).
Replica = tuple[str, int]
#: Exit code after Ctrl-C, as a shell reports a SIGINT death (128 + the signal).
INTERRUPTED = 128 + signal.SIGINT
#: Signals that stop a local run: Ctrl-C, a CI timeout or ``docker stop`` (SIGTERM),
#: a closed terminal (SIGHUP). Each stops every replica, then exits 128 + the signal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
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
    #: What the run should tell the user before it starts (e.g. an older layout found).
    notes: tuple[str, ...] = ()
    #: What every container starts from: the inherited env, plus store credentials.
    base_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return run_id(self.meta)

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
    spec = validate(manifest.spec, manifest.name, settings, manifest.namespace)
    meta = ExperimentMeta(manifest.name, manifest.namespace, str(uuid.uuid4()))
    outputs = options.outputs.absolute()
    run_dir = outputs / outputs_subpath(spec, meta)
    if run_dir.exists():
        # A uuid4 does not repeat; a directory of that name was made by something else.
        raise ManifestError(
            f"{run_dir} already exists: run id {meta.uid} is taken; nothing was written, "
            "run again (a new id is drawn) or move that directory"
        )
    notes = []
    if (run_dir.parent / DIR_EVENTS).is_dir():
        notes.append(
            f"note: {run_dir.parent / DIR_EVENTS} is from the older layout (no run level); "
            f"left as it is (`incluster metrics {run_dir.parent} --run {LEGACY}` shows it)"
        )
    children = render_all(spec, meta, settings, local_ref_runs(spec, meta, outputs))
    cm = children.config_map
    lookups = StaticLookups(
        config_maps={(manifest.namespace, cm["metadata"]["name"]): config_map_bytes(cm)}
    )
    state_dir = outputs / ".incluster" / manifest.namespace / manifest.name / meta.uid
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
        outputs_path=run_dir,
        state_dir=state_dir,
        notes=tuple(notes),
        base_env={**inherited_env(), **store_env(options)} if options.outputs_url else {},
    )


def local_ref_runs(spec: ExperimentSpec, meta: ExperimentMeta, outputs: Path) -> dict[str, str]:
    """Each experiment ref's run on this machine: the latest run under ``outputs``.

    There is no API server to record runs in: the runs on disk are the record. A ref
    whose latest outputs are of the older layout mounts the experiment's directory.
    Raises InvalidSpec (exit 2) for a ref with no outputs at all, naming the field.
    """
    runs: dict[str, str] = {}
    problems = []
    for i, ref in enumerate(spec.outputs_refs.experiments):
        directory = outputs / ref_experiment_subpath(spec, meta, ref)
        found = list_runs(directory)
        if found and found[-1].id != LEGACY:
            runs[ref] = found[-1].id
        elif not found and not (directory / DIR_EVENTS).is_dir():
            problems.append(
                f"spec.outputsRefs.experiments[{i}]: no run of {ref!r} under {directory}; "
                "run that experiment first with the same --outputs, or remove the reference"
            )
    if problems:
        raise InvalidSpec(problems)
    return runs


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


class Stopped(Exception):
    """A stop signal arrived; raised in the main thread as SIGINT raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _signals(handler: Any) -> Iterator[None]:
    """Handle ``STOP_SIGNALS`` with ``handler`` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
        try:
            with _signals(_raise_stopped):
                outcome = self._follow()
        except (KeyboardInterrupt, Stopped) as exc:
            signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
            # A second signal must not abandon half-stopped replicas: ignore them from now.
            with _signals(signal.SIG_IGN):
                with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                    self.console.message(
                        f"interrupted ({signal.Signals(signum).name}): stopping every replica "
                        f"(SIGKILL after {self.grace:g}s) ..."
                    )
                self._stop(list(self._pods))
                with contextlib.suppress(OSError):
                    self.console.close()
            return 128 + signum
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
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
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
