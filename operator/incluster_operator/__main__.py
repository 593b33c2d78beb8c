"""``python -m incluster_operator``: run the operator with its settings from the environment.

Equivalent to ``kopf run --standalone -m incluster_operator.handlers`` with the watched
namespaces taken from ``INCLUSTER_OPERATOR_NAMESPACES`` instead of command-line flags, so
the Helm chart configures everything through one mechanism (env). Settings are checked
before kopf starts: a malformed value exits with status 2 and a message naming the
variable, instead of an operator that retries its startup forever.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import Sequence

import kopf

from incluster_operator import handlers
from incluster_operator.settings import Settings, SettingsError, from_env


async def operator(
    settings: Settings,
    configuration: object | None = None,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    liveness_endpoint: str | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or forever).

    ``configuration`` (a ``kubernetes.client.Configuration``) overrides in-cluster or
    ``KUBECONFIG`` credentials; embedding callers (tests, the dev cluster) pass one so that
    several operators in one process never share global state.
    """
    memo = kopf.Memo(settings=settings)
    if configuration is not None:
        memo.configuration = configuration
    await kopf.operator(
        registry=kopf.get_default_registry(),
        standalone=True,
        clusterwide=settings.namespaces is None,
        namespaces=settings.namespaces or (),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
        memo=memo,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incluster_operator", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve kopf's health endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    args = parser.parse_args(argv)
    try:
        settings = from_env(os.environ)
    except SettingsError as problem:
        print(f"incluster-operator: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger(handlers.__name__).debug("settings: %s", settings)
    asyncio.run(operator(settings, liveness_endpoint=args.liveness))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
