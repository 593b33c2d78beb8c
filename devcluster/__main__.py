"""`python -m devcluster serve --port N --kubeconfig PATH`: the emulator as a process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import kmock

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="serve the Kubernetes API emulator over HTTP")
    serve_cmd.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_cmd.add_argument("--kubeconfig", type=Path, help="write a kubeconfig here once listening")
    serve_cmd.add_argument("--log-level", default="WARNING")
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
    asyncio.run(serve(args.port, args.kubeconfig, args.host, pods_dir, dict(args.host_path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
