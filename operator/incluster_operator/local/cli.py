"""`incluster run FILE.yaml`: the local runner's command, plugged into the SDK's CLI.

The SDK's ``incluster`` command cannot import the operator (it must stay light and
installable alone), so this module registers itself through the ``incluster.commands``
entry point group; ``register`` adds the subparser.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from incluster_operator import settings
from incluster_operator.api import InvalidSpec
from incluster_operator.local.console import Console
from incluster_operator.local.errors import PodSpecError
from incluster_operator.local.runner import (
    LocalRun,
    ManifestError,
    Options,
    busy_addresses,
    label,
    load_manifest,
    prepare,
)


def _data(value: str) -> tuple[str, Path]:
    name, sep, directory = value.partition("=")
    if not sep or not name or not directory:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be NAME=DIR (a data store name and a directory)"
        )
    return name, Path(directory)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` to the ``incluster`` command."""
    parser = sub.add_parser(
        "run",
        help="run an Experiment's replicas as local processes",
        description=(
            "Run every replica of an Experiment manifest on this machine, with the same "
            "context as in a cluster and a distinct loopback address per replica. Each run "
            "gets its own id and outputs directory. SIGINT (Ctrl-C), SIGTERM and SIGHUP stop "
            "every replica (SIGTERM, then SIGKILL after --grace). Exit code: 0 succeeded, "
            "1 failed, 2 invalid manifest, 128 + the signal when stopped (130, 143, 129)."
        ),
    )
    parser.add_argument("file", type=Path, help="an Experiment manifest (YAML)")
    parser.add_argument(
        "--outputs",
        default="outputs",
        help="outputs directory (./outputs), or an object-store URL (s3://bucket/prefix, "
        "gs://..., az://...): replicas then write under ./outputs and upload there with "
        "the AWS_*/GOOGLE_*/AZURE_* credentials of this shell",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="working directory of containers without workingDir (the current one)",
    )
    parser.add_argument(
        "--data",
        type=_data,
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a data store the spec names under spec.data (repeatable)",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the replica prefixes (auto: when writing to a terminal)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL (10)"
    )
    parser.set_defaults(handler=run_command)


def run_command(args: Any) -> int:
    """The ``run`` subcommand's handler."""
    out = sys.stdout
    try:
        manifest = load_manifest(args.file)
        url = args.outputs if "://" in args.outputs else None
        if url is not None:
            url = settings.outputs_url_option("--outputs", url)
        options = Options(
            outputs=Path("outputs" if url else args.outputs),
            outputs_url=url,
            workdir=(args.workdir or Path.cwd()).absolute(),
            data=dict(args.data),
            grace=args.grace,
        )
        prepared = prepare(manifest, options)
    except (ManifestError, InvalidSpec, PodSpecError, settings.SettingsError) as exc:
        print(f"incluster run: {args.file}: {exc}", file=sys.stderr)
        return 2
    busy = busy_addresses(prepared)
    if busy:
        print(
            f"incluster run: {args.file}: {', '.join(busy)} already in use on this machine "
            f"(is {manifest.namespace}/{manifest.name} already running locally?); stop it "
            "or run under another name or namespace",
            file=sys.stderr,
        )
        return 2
    tty = out.isatty()
    colour = args.color == "always" or (
        args.color == "auto" and tty and not os.environ.get("NO_COLOR")
    )
    replicas = [label(r) for r in sorted(prepared.pods)]
    console = Console(out, replicas, colour=colour, live=tty)
    console.message(f"run {prepared.run_id}: outputs in {prepared.outputs_path}")
    for note in prepared.notes:
        console.message(note)
    for replica, address in sorted(prepared.addresses.items()):
        console.message(f"{label(replica)}: {address}")
    return LocalRun(prepared, console, grace=args.grace).run()
