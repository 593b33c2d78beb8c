"""Does the status summary sync cost the training loop anything, even when the API fails?

Baseline: ``log_metric`` on a run with no sync. Then the same loop with the sync thread
patching every 50 ms (200 times more often than the default): against a devcluster
emulator in its own process (as the API server is in a cluster), against a closed port
(API down), and against a socket that accepts but never answers (API stalled past the
client's timeout). Reported: calls/s, the slowest call, the ratio to the baseline
measured in the same run (best of ``ROUNDS`` alternating rounds: the machine is shared),
and the sync's failures by kind. Also: size and build time of
the bounded status document for a large summary.
"""

from __future__ import annotations

import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from incluster import contract
from incluster.client import Client
from incluster.tracking import sync
from incluster.tracking.run import Run
from incluster_operator.api import crd

CALLS = 60_000
#: Scenarios alternate over rounds; the best rate per scenario is kept (a shared machine).
ROUNDS = 3
NAMESPACE = "default"
#: The real CRD, from its single source (the API models).
CRD = crd.definition()


def _loop(run: Run) -> tuple[float, float]:
    """(calls per second, slowest call in seconds) for CALLS log_metric calls."""
    slowest = 0.0
    clock = time.perf_counter
    started = clock()
    for step in range(CALLS):
        began = clock()
        run.log_metric("loss", 1.0 / (step + 1), step=step)
        took = clock() - began
        if took > slowest:
            slowest = took
    return CALLS / (clock() - started), slowest


def _scenario(directory: Path, url: str | None, token: Path) -> tuple[float, float, dict[str, int]]:
    run = Run(directory / f"run-{time.monotonic_ns()}", "master", 0, register_atexit=False)
    syncer = None
    if url is not None:
        syncer = sync.SummarySync(
            lambda: run.version,
            run.summary,
            lambda: Client(
                name="xp",
                namespace=NAMESPACE,
                base_url=url,
                token_path=token,
                timeout=(0.5, 0.5),
                retries=0,
            ),
            interval=0.05,
        ).start()
    rate, slowest = _loop(run)
    failures: dict[str, int] = {}
    if syncer is not None:
        syncer.close(timeout=1)
        failures = dict(syncer.failures)
    run.end()
    return rate, slowest, failures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emulator(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m devcluster serve`` in its own process; its URL once it listens."""
    kubeconfig = directory / "kubeconfig"
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devcluster",
            "serve",
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not kubeconfig.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the devcluster emulator did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


def _create_experiment(url: str) -> None:
    requests.post(
        f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD, timeout=10
    ).raise_for_status()
    requests.post(
        f"{url}/apis/{contract.API_GROUP}/{contract.API_VERSION}/namespaces/{NAMESPACE}/"
        f"{contract.PLURAL}",
        json={
            "apiVersion": f"{contract.API_GROUP}/{contract.API_VERSION}",
            "kind": "Experiment",
            "metadata": {"name": "xp", "namespace": NAMESPACE},
            "spec": {},
        },
        timeout=10,
    ).raise_for_status()


def _document_cost() -> None:
    summary = {
        "metrics": {
            f"layer{i}/grad_norm": {"value": i * 0.5, "step": 10_000} for i in range(10_000)
        },
        "inputs": {f"p{i}": i for i in range(1_000)},
        "tags": [f"tag-{i}" for i in range(1_000)],
    }
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        doc = sync.tracking_document(summary)
    took = (time.perf_counter() - started) / rounds
    size = len(json.dumps(doc, separators=(",", ":")))
    print(
        f"   status document for 10,000 metrics: {size} bytes "
        f"({size / (1.5 * 2**20):.1%} of etcd's 1.5 MiB), built in {took * 1000:.1f} ms"
    )


def main() -> None:
    # The failure scenarios log their (expected) warning once per kind: keep the report clean.
    logging.getLogger("incluster.tracking.sync").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        token = directory / "token"
        token.write_text("bench-token")
        proc, url = _emulator(directory)
        silent = socket.socket()  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        try:
            _create_experiment(url)
            scenarios = {
                "no sync (baseline)": None,
                "sync, API healthy": url,
                "sync, API down (connection refused)": f"http://127.0.0.1:{_free_port()}",
                "sync, API stalled (> timeout)": f"http://127.0.0.1:{silent.getsockname()[1]}",
            }
            best: dict[str, float] = dict.fromkeys(scenarios, 0.0)
            slowest: dict[str, list[float]] = {label: [] for label in scenarios}
            failures: dict[str, dict[str, int]] = {label: {} for label in scenarios}
            for round_ in range(ROUNDS):
                labels = list(scenarios)
                labels = labels[round_:] + labels[:round_]
                for label in labels:
                    rate, worst, failed = _scenario(directory, scenarios[label], token)
                    best[label] = max(best[label], rate)
                    slowest[label].append(worst)
                    for kind, count in failed.items():
                        failures[label][kind] = failures[label].get(kind, 0) + count
            baseline = best["no sync (baseline)"]
            for label in scenarios:
                print(
                    f"   {label}: {best[label]:,.0f} log_metric/s "
                    f"({best[label] / baseline:.2f}x baseline), slowest call (median of "
                    f"rounds) {statistics.median(slowest[label]) * 1e3:.2f} ms "
                    "(sync client timeout 500 ms), "
                    f"sync failures {failures[label]}"
                )
        finally:
            silent.close()
            proc.terminate()
            proc.wait(timeout=10)
    _document_cost()


if __name__ == "__main__":
    main()
