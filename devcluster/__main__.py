"""`python -m devcluster serve [--real] --kubeconfig PATH [--run-pods]`: a dev cluster.

Without ``--real``: the emulator as a process (fast, for the demo and fault injection).
With ``--real``: upstream etcd, kube-apiserver and kube-controller-manager built by
``make control-plane`` (see docs/devcluster.md); the pod runner is then a real node.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import kmock

from devcluster.controlplane import ControlPlane, ControlPlaneError
from devcluster.emulator import Emulator
from devcluster.kubeconfig import write_kubeconfig
from devcluster.podrunner import PodRunner
from devcluster.podrunner.__main__ import add_host_path_argument


async def serve(
    port: int,
    kubeconfig: Path | None,
    host: str,
    pods_dir: Path | None = None,
    host_paths: Mapping[str, Path] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator() as emu, kmock.Server(emu, host=host, port=port or None) as srv:
        url = f"http://{srv.host}:{srv.port}"
        # The kubeconfig appears only once the port accepts connections: scripts wait for it.
        if kubeconfig is not None:
            write_kubeconfig(kubeconfig, url)
        print(f"devcluster listening on {url} (port {srv.port})", flush=True)
        runner = None
        if pods_dir is not None:
            runner = PodRunner.for_url(url, pods_dir, host_paths=host_paths).start()
        try:
            await stop.wait()
        finally:
            if runner is not None:
                await asyncio.to_thread(runner.stop)
        emu.close_watches()  # let the server's shutdown finish its streaming handlers


def serve_real(
    port: int,
    kubeconfig: Path | None,
    host: str,
    pods_dir: Path | None,
    data_dir: Path | None,
    host_paths: Mapping[str, Path] | None = None,
) -> int:
    """Run the real control plane until SIGINT/SIGTERM, or until a component dies."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    plane = ControlPlane(data_dir=data_dir, host=host, port=port)
    runner = None
    try:
        plane.start()
        if kubeconfig is not None:
            kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            partial = kubeconfig.with_name(f".{kubeconfig.name}.tmp")
            shutil.copyfile(plane.kubeconfig, partial)
            partial.chmod(0o600)
            partial.replace(kubeconfig)
        print(
            f"devcluster (real control plane) listening on {plane.url}, ready in "
            f"{time.monotonic() - started:.1f}s; data and logs in {plane.data_dir}",
            flush=True,
        )
        if pods_dir is not None:
            import kubernetes

            client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(plane.kubeconfig)
            )
            runner = PodRunner(client, pods_dir, node="devcluster", host_paths=host_paths).start()
            print(f"node devcluster runs pods as processes; logs under {pods_dir}", flush=True)
        while not stop.wait(0.5):
            failure = plane.failure()
            if failure:
                print(f"devcluster: {failure}", file=sys.stderr, flush=True)
                return 1
        return 0
    except ControlPlaneError as e:
        print(f"devcluster: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if runner is not None:
            runner.stop()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="serve the Kubernetes API emulator over HTTP")
    serve_cmd.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_cmd.add_argument("--kubeconfig", type=Path, help="write a kubeconfig here once listening")
    serve_cmd.add_argument("--log-level", default="WARNING")
    serve_cmd.add_argument(
        "--real",
        action="store_true",
        help="a real control plane (etcd, kube-apiserver, kube-controller-manager) "
        "built by `make control-plane`, instead of the emulator",
    )
    serve_cmd.add_argument(
        "--data-dir",
        type=Path,
        help="with --real: an empty folder for etcd, certificates and logs "
        "(default: a temp dir, removed on exit)",
    )
    serve_cmd.add_argument(
        "--run-pods", action="store_true", help="run pods as local processes (a kubelet stand-in)"
    )
    serve_cmd.add_argument(
        "--pods-dir",
        type=Path,
        help="with --run-pods: pod directories and logs (default: a temp dir)",
    )
    add_host_path_argument(serve_cmd)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be within 0..65535, got {args.port}")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    pods_dir = None
    if args.run_pods:
        pods_dir = args.pods_dir or Path(tempfile.mkdtemp(prefix="devcluster-pods-"))
    host_paths = dict(args.host_path)
    if args.real:
        return serve_real(
            args.port, args.kubeconfig, args.host, pods_dir, args.data_dir, host_paths
        )
    if args.data_dir is not None:
        parser.error("--data-dir goes with --real")
    asyncio.run(serve(args.port, args.kubeconfig, args.host, pods_dir, host_paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
