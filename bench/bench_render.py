"""Render layer: pod bytes and render time as the replica count R grows.

Baseline, measured in the same run: the same pod with the whole cluster inlined in env
(``INCLUSTER_CLUSTER`` + ``TF_CONFIG``), which is what Kubeflow's training-operator does
with TF_CONFIG. The goal is a flat pod size above the inline threshold.
"""

from __future__ import annotations

import json
import time

from incluster_operator.api import ExperimentSpec, validate
from incluster_operator.render import ExperimentMeta, plan, render_all, render_pod
from incluster_operator.settings import Settings

META = ExperimentMeta("bench", "default", "0b5e0c1e-7c44-4f4b-9d1c-2a0f3f6f0c11")
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "python:3.11"}]}}
#: Linux's limit on one env string (exec fails above it).
MAX_ARG_STRLEN = 128 * 1024


def _spec(replicas: int, settings: Settings) -> ExperimentSpec:
    raw = {
        "project": "bench",
        "framework": "tensorflow",
        "replicas": {
            "chief": {"template": TEMPLATE},
            "worker": {"replicas": replicas, "template": TEMPLATE},
        },
    }
    return validate(raw, META.name, settings)


def _pod_bytes(replicas: int, settings: Settings) -> tuple[int, int]:
    """(pod JSON bytes, longest env value) of the last worker."""
    p = plan(_spec(replicas, settings), META, settings)
    pod = render_pod(p, "worker", replicas - 1)
    longest = max(len(e["value"].encode()) for e in pod["spec"]["containers"][0]["env"])
    return len(json.dumps(pod, separators=(",", ":")).encode()), longest


def main() -> None:
    ours = Settings()
    inline_all = Settings(inline_env_max_bytes=1 << 30)
    print(f"{'R':>6} {'pod bytes':>10} {'inlined':>10} {'ratio':>7} {'longest env inlined':>20}")
    for replicas in (1, 100, 1000, 4000):
        size, _ = _pod_bytes(replicas, ours)
        base, longest = _pod_bytes(replicas, inline_all)
        flag = "  > MAX_ARG_STRLEN" if longest > MAX_ARG_STRLEN else ""
        print(f"{replicas:>6} {size:>10} {base:>10} {base / size:>6.1f}x {longest:>20}{flag}")
    for replicas in (100, 1000):
        spec = _spec(replicas, ours)
        started = time.perf_counter()
        children = render_all(spec, META, ours)
        elapsed = time.perf_counter() - started
        print(
            f"render_all R={replicas}: {len(children.pods)} pods in {elapsed * 1000:.0f} ms "
            f"({len(children.pods) / elapsed:,.0f} pods/s)"
        )
