"""The real control plane: cold start, and the operator's reconcile work on it.

Upstream etcd + kube-apiserver + kube-controller-manager (built by `make control-plane`).
The operator runs as a process with an identity of its own (a client certificate in
system:masters), so the audit log counts its writes apart from this script's (which plays
the user and the kubelet).

Baselines measured in the same run:
- cold start: the goal is 20 s on this 2-core machine;
- throughput: the same 200 x 4 scenario on the emulator (bench_operator's), and this
  script creating the same objects directly on the same real server;
- writes per experiment: R, the pods themselves (goal: R + a constant).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

import kubernetes

from bench.bench_operator import (
    NOT_OPERATOR,
    WRITES,
    Bench,
    emulator_bench,
    install_crd,
    operator_running,
)
from devcluster import audit
from devcluster.controlplane import ControlPlane, missing_binaries

OPERATOR_USER = "incluster-operator"
EXPERIMENTS, REPLICAS = 200, 4


class RealBench(Bench):
    """bench_operator's scenarios on a real API server: writes from its audit log."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        config: Any = kubernetes.config
        self.client = config.new_client_from_config(config_file=str(plane.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self._namespaces = 0

    def operator_writes(self, namespace: str) -> Counter[str]:
        out: Counter[str] = Counter()
        for r in audit.requests(self.plane.audit_log, namespace):
            mine = r.user == OPERATOR_USER and r.verb in WRITES
            if mine and (r.verb, r.resource) not in NOT_OPERATOR:
                out[f"{r.verb} {r.resource}"] += 1
        return out


def cold_starts(runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with ControlPlane():
            times.append(time.perf_counter() - started)
    return times


def on_real(plane: ControlPlane) -> tuple[float, float, float, dict[int, int]]:
    bench = RealBench(plane)
    assert plane.data_dir is not None
    try:
        install_crd(bench.client)
        operator_config = plane.kubeconfig_for(OPERATOR_USER, "system:masters")
        with operator_running(operator_config, plane.data_dir / "operator.log"):
            bench.run_one(1)  # warm-up
            writes = {r: sum(bench.run_one(r)[0].values()) for r in (1, 10, 100)}
            pending, running = bench.throughput(EXPERIMENTS, REPLICAS)
            direct = bench.direct_baseline(EXPERIMENTS, REPLICAS)
        return pending, running, direct, writes
    finally:
        bench.client.close()


def on_emulator() -> tuple[float, float]:
    with emulator_bench() as bench:
        bench.run_one(1)  # warm-up
        return bench.throughput(EXPERIMENTS, REPLICAS)


def main() -> None:
    missing = missing_binaries()
    if missing:
        print(f"skipped: {', '.join(missing)} not built (make control-plane)")
        return
    starts = cold_starts()
    median = statistics.median(starts)
    shown = ", ".join(f"{s:.1f}" for s in starts)
    print(f"control-plane cold start to a working controller-manager: {median:.1f} s median")
    print(f"  of {shown} s; goal 20 s: {median / 20:.2f}x of the budget")
    with ControlPlane() as plane:
        pending, running, direct, writes = on_real(plane)
    emu_pending, emu_running = on_emulator()
    print("API writes by the operator per experiment on the real server (audit log)")
    for r, total in writes.items():
        print(f"  R={r:>4}: {total:>4} writes = R + {total - r}")
    print(f"reconcile throughput, {EXPERIMENTS} experiments x {REPLICAS} replicas (experiments/s)")
    print(f"{'':>38} {'real':>8} {'emulator':>9} {'real/emulator':>14}")
    print(
        f"  create -> all pods + status Pending  {pending:>8.1f} {emu_pending:>9.1f} "
        f"{pending / emu_pending:>13.2f}x"
    )
    print(
        f"  pods Running -> status Running       {running:>8.1f} {emu_running:>9.1f} "
        f"{running / emu_running:>13.2f}x"
    )
    print(
        f"  baseline on the real server, the same objects created directly: {direct:.1f}/s "
        f"(the operator reaches {pending / direct:.2f}x of it)"
    )
