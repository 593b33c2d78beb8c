"""Local machinery: what turning a rendered pod into processes costs, against baselines.

- plan: ``plan_pod`` of one rendered worker pod (env, context files, remapping) as R
  grows, against the operator's own ``render_pod`` of that pod (same run). The plan
  must stay O(1) in R apart from copying the cluster file.
- process: ``supervisor.start(...).wait()`` of ``true`` against a bare
  ``subprocess.run`` (the floor of any runner on this machine), and a whole ``PodRun``
  (materialise + run + state tracking) of the same pod.
- run: ``incluster run`` of the 4-replica example end to end (startup to exit).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from incluster_operator.api import validate
from incluster_operator.local.console import Console
from incluster_operator.local.lookups import StaticLookups, config_map_bytes
from incluster_operator.local.plan import Layout, plan_pod
from incluster_operator.local.podrun import PodRun
from incluster_operator.local.runner import LocalRun, Options, load_manifest, prepare
from incluster_operator.local.supervisor import start
from incluster_operator.render import ExperimentMeta, plan, render_all, render_pod
from incluster_operator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
META = ExperimentMeta("bench", "default", "0b5e0c1e-7c44-4f4b-9d1c-2a0f3f6f0c11")
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "x", "command": ["true"]}]}}
TRUE = shutil.which("true") or "/bin/true"


def _per_call(fn: object, seconds: float = 1.0) -> float:
    """Mean seconds per call of ``fn`` over about ``seconds``."""
    assert callable(fn)
    fn()
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        n += 1
    return (time.perf_counter() - started) / n


def bench_plan(tmp: Path) -> None:
    settings = Settings(addressing="loopback")
    print(f"{'R':>6} {'render_pod':>11} {'plan_pod':>10} {'ratio':>6}")
    for replicas in (4, 100, 1000):
        raw = {
            "project": "bench",
            "replicas": {
                "master": {"template": TEMPLATE},
                "worker": {"replicas": replicas - 1, "template": TEMPLATE},
            },
        }
        spec = validate(raw, META.name, settings)
        p = plan(spec, META, settings)
        children = render_all(spec, META, settings)
        cm = children.config_map
        lookups = StaticLookups(
            config_maps={("default", cm["metadata"]["name"]): config_map_bytes(cm)}
        )
        pod = children.pods[-1]
        layout = Layout(tmp / "layout")
        base = _per_call(partial(render_pod, p, "worker", 0), 0.5)
        ours = _per_call(partial(plan_pod, pod, lookups, layout, base_env={}), 0.5)
        print(f"{replicas:>6} {base * 1e6:>9.0f}us {ours * 1e6:>8.0f}us {ours / base:>5.1f}x")


def bench_processes(tmp: Path) -> None:
    log = tmp / "true.log"
    baseline = _per_call(lambda: subprocess.run([TRUE], check=True))
    supervised = _per_call(lambda: start([TRUE], {}, None, log).wait())
    pod = {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "command": [TRUE]}]},
    }
    planned = plan_pod(pod, StaticLookups(), Layout(tmp / "pods"), base_env={})

    def whole_pod() -> None:
        PodRun(planned, "127.0.0.1").start().wait()

    pod_run = _per_call(whole_pod)
    print(f"subprocess.run(true)        {baseline * 1e3:7.2f} ms  (baseline)")
    print(f"supervisor.start().wait()   {supervised * 1e3:7.2f} ms  {supervised / baseline:.2f}x")
    print(f"PodRun (materialise+run)    {pod_run * 1e3:7.2f} ms  {pod_run / baseline:.2f}x")


def bench_run(tmp: Path) -> None:
    manifest = load_manifest(ROOT / "examples" / "03-peers.yaml")
    started = time.perf_counter()
    prepared = prepare(manifest, Options(outputs=tmp / "out", workdir=ROOT))
    console = Console(io.StringIO(), [], colour=False, live=False)
    code = LocalRun(prepared, console).run()
    elapsed = time.perf_counter() - started
    print(f"incluster run examples/03-peers.yaml (4 replicas): exit {code} in {elapsed:.2f} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench_plan(Path(tmp))
        bench_processes(Path(tmp))
        bench_run(Path(tmp))


if __name__ == "__main__":
    main()
