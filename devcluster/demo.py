"""`make demo`: the whole chain on one machine, as real processes.

1. the Kubernetes API emulator with the pod runner (``python -m devcluster serve
   --run-pods``), 2. the CRD, 3. the operator (``python -m incluster_operator``, loopback
   addressing, outputs on a hostPath), 4. ``kubectl apply -f examples/03-peers.yaml``
   (master, two workers, one ps that greet each other over TCP through the SDK), then
   ``kubectl get xp``, the tracked summary from the Experiment's status and the metrics
   table, and a clean shutdown. ``DevStack`` is reused by the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devcluster.polling import poll

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "crds" / "experiments.incluster.dev.yaml"
EXAMPLE = ROOT / "examples" / "03-peers.yaml"
#: The hostPath the operator puts outputs on; the pod runner keeps it under its root.
OUTPUTS_HOST_PATH = "/var/lib/incluster/outputs"


class StackError(RuntimeError):
    """A component did not come up or the experiment did not finish; says which and why."""


def kubectl_binary() -> str:
    beside_python = Path(sys.executable).with_name("kubectl")
    return str(beside_python) if beside_python.exists() else "kubectl"


def operator_command() -> list[str]:
    """The operator's entry point; kopf's own runner if the package has no ``__main__``."""
    if importlib.util.find_spec("incluster_operator.__main__") is not None:
        return [sys.executable, "-m", "incluster_operator"]
    return [
        sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
        "-m", "incluster_operator.handlers",
    ]  # fmt: skip


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until truthy; StackError naming ``what`` at the deadline."""
    return poll(predicate, timeout, what, interval=interval, error=StackError)


@dataclass
class Stack:
    """An API with the operator running behind it, reached through a kubeconfig.

    A real cluster (with the operator installed) is used as is; ``DevStack`` starts one.
    """

    kubeconfig: Path

    def check(self) -> None:
        """Raise StackError when a component is down (nothing to check on a real cluster)."""

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        result = subprocess.run(
            [kubectl_binary(), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise StackError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def experiment(self, name: str, namespace: str = "default") -> dict[str, Any]:
        out = self.kubectl("get", "experiment", name, "-n", namespace, "-o", "json")
        return dict(json.loads(out))

    def wait_finished(self, name: str, namespace: str = "default", timeout: float = 90) -> str:
        """Poll the Experiment's phase until Succeeded/Failed; the components must stay up."""

        def finished() -> str | None:
            self.check()
            phase = (self.experiment(name, namespace).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        return str(wait_until(finished, timeout, f"experiment {namespace}/{name} to finish", 0.3))


@dataclass
class DevStack(Stack):
    """An API with a pod runner, and the operator, as child processes; files in ``workdir``.

    By default the API is the emulator (``serve --run-pods``). With ``api_kubeconfig`` it
    is that real API server (the tests' control plane): the pod runner joins it as a Node
    and the operator watches only ``namespace``, so stacks of parallel tests never meet.
    """

    workdir: Path = Path()
    operator_env: Mapping[str, str] = field(default_factory=dict)
    api_kubeconfig: Path | None = None
    namespace: str | None = None
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @classmethod
    def at(cls, workdir: Path, **options: Any) -> DevStack:
        return cls(kubeconfig=workdir / "kubeconfig", workdir=workdir, **options)

    @property
    def pods_dir(self) -> Path:
        return self.workdir / "pods"

    @property
    def outputs_root(self) -> Path:
        """Where the operator's outputs hostPath lands (the runner's ``--host-path``)."""
        return self.workdir / "outputs"

    def outputs_dir(self, outputs_subpath: str) -> Path:
        """Where a pod's outputs path (below the outputs root) is on this machine."""
        return self.outputs_root / outputs_subpath

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def _start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(
            list(argv), cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )

    def start(self) -> DevStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.api_kubeconfig is not None:
            self._join_real_api(self.api_kubeconfig)
        else:
            self._start_emulator()
        self.kubectl("apply", *self._apply_flags, "-f", str(CRD))
        self.kubectl(
            "wait", "--for=condition=Established", "crd/experiments.incluster.dev", "--timeout=30s"
        )
        env = {
            **self.env(),
            "INCLUSTER_OPERATOR_ADDRESSING": "loopback",
            # One machine: the report API on a free loopback port, a self-signed pair.
            "INCLUSTER_OPERATOR_REPORT_LISTEN": "127.0.0.1:0",
            "INCLUSTER_OPERATOR_OUTPUTS_HOST_PATH": OUTPUTS_HOST_PATH,
            **({"INCLUSTER_OPERATOR_NAMESPACES": self.namespace} if self.namespace else {}),
            **self.operator_env,
        }
        self._start("operator", operator_command(), env)
        return self

    @property
    def _apply_flags(self) -> tuple[str, ...]:
        # Server-side apply on a real server: parallel stacks may install the CRD at once.
        return () if self.api_kubeconfig is None else ("--server-side", "--force-conflicts")

    def _start_emulator(self) -> None:
        serve = [
            sys.executable, "-m", "devcluster", "serve", "--port", "0",
            "--kubeconfig", str(self.kubeconfig), "--run-pods", "--pods-dir", str(self.pods_dir),
            "--host-path", f"{OUTPUTS_HOST_PATH}={self.outputs_root}",
        ]  # fmt: skip
        self._start("devcluster", serve, os.environ)

        def ready() -> bool:
            self.check()
            return self.kubeconfig.exists()

        wait_until(ready, 30, "the emulator's kubeconfig")

    def _join_real_api(self, api_kubeconfig: Path) -> None:
        self.kubeconfig = api_kubeconfig
        runner = [
            sys.executable, "-m", "devcluster.podrunner", "--kubeconfig", str(api_kubeconfig),
            "--root", str(self.pods_dir), "--node", f"node-{self.namespace or 'devstack'}",
            "--host-path", f"{OUTPUTS_HOST_PATH}={self.outputs_root}",
        ]  # fmt: skip
        if self.namespace:
            runner += ["--namespace", self.namespace]
        self._start("podrunner", runner, os.environ)

    def stop(self) -> None:
        """SIGTERM the operator, then the pod runner (which stops every pod's processes)."""
        for name in ("operator", "podrunner", "devcluster"):
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()

    def __enter__(self) -> DevStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _section(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="incluster-demo-") as tmp:
        stack = DevStack.at(Path(tmp))
        with stack:
            _section("kubectl apply -f examples/03-peers.yaml")
            print(stack.kubectl("apply", "-f", str(EXAMPLE)), end="")
            try:
                phase = stack.wait_finished("peers")
            except StackError as exc:
                print(f"demo failed: {exc}\n--- operator log:\n{stack.log('operator')[-3000:]}")
                return 1
            _section("kubectl get xp")
            print(stack.kubectl("get", "xp"), end="")
            status = stack.experiment("peers").get("status") or {}
            _section("tracked summary (status.tracking)")
            tracking = status.get("tracking")
            if tracking is None:
                print("(none: the master could not reach the API; its log says why)")
            else:
                print(json.dumps(tracking, indent=2, sort_keys=True))
            _section("metrics (incluster metrics)")
            outputs = stack.outputs_dir("default/examples/peers")
            from incluster.cli import main as incluster_main

            with contextlib.redirect_stderr(sys.stdout):
                incluster_main(["metrics", str(outputs)])
            _section("replica logs")
            for log in sorted(stack.pods_dir.glob("pods/default/peers-*/logs/main.log")):
                last = log.read_text().strip().splitlines()[-1:]
                print(f"{log.parent.parent.name}: {' '.join(last)}")
            _section("shutting down")
        print(f"{phase} in {time.monotonic() - started:.1f}s", flush=True)
        return 0 if phase == "Succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
