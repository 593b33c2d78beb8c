"""The operator against the emulator: API writes per experiment, pod size, reconcile throughput.

The emulator runs in this process (its access log counts every call by verb, resource and
namespace); the operator runs as a real process (``python -m incluster_operator``), so its
CPU does not share a GIL with the emulator. This script plays user and kubelet.

Baselines measured in the same run:
- writes: R, the pods themselves (the goal is R + a constant; Kubeflow's training-operator
  makes about 4R objects: a pod and a Service per replica, plus their status updates);
- pod size: the pod at R = 1 (the goal is flat; small clusters are also inlined in env,
  so the pod shrinks once the cluster definition passes the inline threshold);
- throughput: this script creating the same objects directly (Service, ConfigMap, pods),
  sequentially, with the same client: the API's own floor for that work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from incluster_operator.api.models import GROUP, PLURAL, VERSION

from devcluster.kubeconfig import write_kubeconfig
from devcluster.polling import poll
from devcluster.server import ThreadedCluster

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "experiments.incluster.dev.yaml"
WRITES = ("create", "update", "patch", "delete", "deletecollection")
#: Writes made by this script (the user and the kubelet), not by the operator.
NOT_OPERATOR = {("create", PLURAL), ("delete", PLURAL), ("patch", "pods/status")}
TIMEOUT = 120.0
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "python:3.11-slim"}]}}


def _wait(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    return poll(predicate, timeout, what)


def _experiment(name: str, replicas: int) -> dict[str, Any]:
    """A chief and R - 1 workers: R pods."""
    spec: dict[str, Any] = {"chief": {"template": TEMPLATE}}
    if replicas > 1:
        spec["worker"] = {"replicas": replicas - 1, "template": TEMPLATE}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {"project": "bench", "framework": "tensorflow", "replicas": spec},
    }


def _terminated(phase: str) -> dict[str, Any]:
    state = (
        {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        if phase == "Running"
        else {"terminated": {"exitCode": 0, "reason": "Completed"}}
    )
    return {
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "main", "ready": phase == "Running", "restartCount": 0, "state": state}
            ],
        }
    }


class Bench:
    """The emulator, an operator process and clients for the user's side."""

    def __init__(self, server: ThreadedCluster, kubeconfig: Path) -> None:
        self.server = server
        # Typed Any: bodies are plain dicts, which the client accepts but its stubs do not.
        config: Any = kubernetes.config
        self.client: Any = config.new_client_from_config(config_file=str(kubeconfig))
        self.core: Any = kubernetes.client.CoreV1Api(self.client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.client)
        self._namespaces = 0

    def namespace(self) -> str:
        self._namespaces += 1
        name = f"bench-{self._namespaces}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def phase(self, namespace: str, name: str) -> str | None:
        body = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        phase: str | None = (body.get("status") or {}).get("phase")
        return phase

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        response = self.core.list_namespaced_pod(namespace, _preload_content=False)
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def set_phase(self, namespace: str, pods: Iterable[str], phase: str) -> None:
        for pod in pods:
            self.core.patch_namespaced_pod_status(
                pod, namespace, _terminated(phase), _preload_content=False
            )

    def operator_writes(self, namespace: str) -> Counter[str]:
        """Writes in ``namespace`` by the operator, keyed 'verb resource'."""
        log = self.server.call(lambda: dict(self.server.emulator.access_log))
        out: Counter[str] = Counter()
        for access, count in log.items():
            if access.namespace != namespace or access.verb not in WRITES:
                continue
            if (access.verb, access.resource) in NOT_OPERATOR:
                continue
            out[f"{access.verb} {access.resource}"] += count
        return out

    def run_one(self, replicas: int) -> tuple[Counter[str], int]:
        """One experiment through its life (create, run, succeed, delete).

        Returns the operator's writes and the stored size of the last pod.
        """
        ns = self.namespace()
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, _experiment("xp", replicas)
        )
        pods = _wait(lambda: len(p := self.pods(ns)) == replicas and p, f"{replicas} pods")
        _wait(lambda: self.phase(ns, "xp") == "Pending", "phase Pending")
        size = max(len(json.dumps(p, separators=(",", ":")).encode()) for p in pods)
        names = sorted(p["metadata"]["name"] for p in pods)
        self.set_phase(ns, names, "Running")
        _wait(lambda: self.phase(ns, "xp") == "Running", "phase Running")
        self.set_phase(ns, [n for n in names if "-worker-" in n], "Succeeded")
        self.set_phase(ns, [n for n in names if "-chief-" in n], "Succeeded")
        _wait(lambda: self.phase(ns, "xp") == "Succeeded", "phase Succeeded")
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "xp")

        def gone() -> bool:
            try:
                self.phase(ns, "xp")
            except kubernetes.client.ApiException as exc:
                return bool(exc.status == 404)
            return False

        _wait(gone, "the experiment deleted")
        return self.operator_writes(ns), size

    def pod_size(self, replicas: int) -> int:
        """The stored size of a pod of an R-replica experiment (the first worker, or the chief).

        The experiment is left behind: measure this last (its remaining creates go on).
        """
        ns = self.namespace()
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, _experiment("xp", replicas)
        )

        pod_name = "xp-worker-0" if replicas > 1 else "xp-chief-0"

        def stored() -> dict[str, Any] | None:
            emulator = self.server.emulator
            return self.server.call(lambda: emulator.stored("v1/pods", ns, pod_name))

        pod = _wait(stored, f"the first worker of an R={replicas} experiment")
        return len(json.dumps(pod, separators=(",", ":")).encode())

    def throughput(self, experiments: int, replicas: int) -> tuple[float, float]:
        """Experiments/s from creation to Pending (all pods), then from pods Running to Running."""
        ns = self.namespace()
        started = time.perf_counter()
        for i in range(experiments):
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, _experiment(f"xp{i}", replicas)
            )

        def count(phase: str) -> bool:
            time.sleep(0.2)  # polling is work for the emulator too: keep it rare
            listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
            found = [(i.get("status") or {}).get("phase") for i in listed["items"]]
            return found.count(phase) == experiments

        _wait(lambda: count("Pending"), f"{experiments} experiments Pending")
        created = time.perf_counter() - started
        names = [p["metadata"]["name"] for p in self.pods(ns)]
        started = time.perf_counter()
        self.set_phase(ns, names, "Running")
        _wait(lambda: count("Running"), f"{experiments} experiments Running")
        running = time.perf_counter() - started
        return experiments / created, experiments / running

    def direct_baseline(self, experiments: int, replicas: int) -> float:
        """Experiments/s when this script creates a Service, a ConfigMap and the pods itself."""
        ns = self.namespace()
        started = time.perf_counter()
        for i in range(experiments):
            self.core.create_namespaced_service(
                ns, {"metadata": {"name": f"d{i}"}, "spec": {"clusterIP": "None", "ports": []}}
            )
            config_map: Any = {"metadata": {"name": f"d{i}-context"}, "data": {"c": "{}"}}
            self.core.create_namespaced_config_map(ns, config_map)
            for r in range(replicas):
                pod: Any = {"metadata": {"name": f"d{i}-worker-{r}"}, "spec": TEMPLATE["spec"]}
                self.core.create_namespaced_pod(ns, pod, _preload_content=False)
        return experiments / (time.perf_counter() - started)


def _operator(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INCLUSTER_OPERATOR_", "KUBERNETES_SERVICE"))
    }
    env["KUBECONFIG"] = str(kubeconfig)
    env["INCLUSTER_OPERATOR_REPORT_LISTEN"] = "127.0.0.1:0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "incluster_operator", "--log-level", "WARNING"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def install_crd(client: Any) -> None:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    kubernetes.client.ApiextensionsV1Api(client).create_custom_resource_definition(crd)


@contextmanager
def operator_running(kubeconfig: Path, log: Path) -> Iterator[None]:
    """The operator process for the block; its log's end is printed if the block fails."""
    operator = _operator(kubeconfig, log)
    try:
        yield
    except BaseException:
        print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        operator.terminate()
        operator.wait(30)


@contextmanager
def emulator_bench() -> Iterator[Bench]:
    """The emulator with the CRD, and the operator process behind it."""
    with tempfile.TemporaryDirectory() as tmp, ThreadedCluster() as server:
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", server.url)
        bench = Bench(server, kubeconfig)
        try:
            install_crd(bench.client)
            with operator_running(kubeconfig, Path(tmp) / "operator.log"):
                yield bench
        finally:
            bench.client.close()


def main() -> None:
    with emulator_bench() as bench:
        _report(bench)


def _report(bench: Bench) -> None:
    bench.run_one(1)  # warm-up: the operator process is up and has seen one experiment
    print("API writes by the operator per experiment (create -> Running -> Succeeded -> delete)")
    header = f"{'R':>5} {'writes':>7} {'- R':>5} {'writes/R':>9} {'4R (Kubeflow)':>14} {'life':>6}"
    print(f"{header}  top writes")
    for replicas in (1, 10, 100, 300):
        started = time.perf_counter()
        writes, _ = bench.run_one(replicas)
        took = time.perf_counter() - started
        total = sum(writes.values())
        top = ", ".join(f"{k}={v}" for k, v in sorted(writes.items(), key=lambda i: -i[1])[:4])
        print(
            f"{replicas:>5} {total:>7} {total - replicas:>5} {total / replicas:>9.2f} "
            f"{4 * replicas:>14} {took:>5.1f}s  {top}"
        )
    experiments, replicas = 200, 4
    to_pending, to_running = bench.throughput(experiments, replicas)
    direct = bench.direct_baseline(experiments, replicas)
    print(f"\nreconcile throughput, {experiments} experiments x {replicas} replicas")
    print(f"  create -> all pods + status Pending : {to_pending:7.1f} experiments/s")
    print(f"  pods Running -> status Running       : {to_running:7.1f} experiments/s")
    print(
        f"  baseline, the same objects created directly by one client: {direct:7.1f} "
        f"experiments/s (the operator reaches {to_pending / direct:.2f}x of it)"
    )
    print("\nstored pod object size (bytes), baseline R = 1")
    sizes = {r: bench.pod_size(r) for r in (1, 100, 1000, 4000)}
    for r, size in sizes.items():
        print(f"{r:>5} {size:>8} {size / sizes[1]:>6.2f}x")
