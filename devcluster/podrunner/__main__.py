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


def _host_path(value: str) -> tuple[str, Path]:
    host, sep, directory = value.partition("=")
    if not sep or not host.startswith("/") or not directory:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be HOSTPATH=DIR (an absolute hostPath and a local directory)"
        )
    return host, Path(directory).absolute()


def add_host_path_argument(parser: argparse.ArgumentParser) -> None:
    """``--host-path HOSTPATH=DIR``: where a hostPath volume lands on this machine.

    Without it a hostPath lives under ``<root>/hostpath/`` (a pod spec never reaches the
    machine's real files unasked). ``--host-path /x=/x`` puts the operator's
    ``INCLUSTER_OPERATOR_OUTPUTS_HOST_PATH=/x`` outputs at ``/x`` itself.
    """
    parser.add_argument(
        "--host-path",
        type=_host_path,
        action="append",
        default=[],
        metavar="HOSTPATH=DIR",
        help="put hostPath volumes at or under HOSTPATH in DIR (repeatable)",
    )


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
    add_host_path_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="podrunner: %(message)s")
    api_client = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    runner = PodRunner(
        api_client,
        args.root,
        workdir=args.workdir,
        node=args.node,
        namespace=args.namespace,
        host_paths=dict(args.host_path),
    )
    with runner:
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
