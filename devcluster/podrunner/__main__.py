"""``python -m devcluster.podrunner --kubeconfig PATH --root DIR [--node N]``: run pods.

SIGINT, SIGTERM and SIGHUP stop every pod's processes before exiting, so no replica outlives
the dev cluster.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from kubernetes import config

from devcluster.podrunner.runner import PodRunner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.podrunner", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the API to watch")
    parser.add_argument("--root", required=True, type=Path, help="pod directories and logs")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="cwd of containers without workingDir"
    )
    parser.add_argument(
        "--node",
        help="on a real API server: register as this Node, bind unscheduled pods, run those "
        "bound here (default: run every pod, as on the emulator)",
    )
    parser.add_argument("--namespace", help="only this namespace's pods")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="podrunner: %(message)s")
    api_client = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    runner = PodRunner(
        api_client, args.root, workdir=args.workdir, node=args.node, namespace=args.namespace
    )
    with runner:
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
