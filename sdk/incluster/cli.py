"""The ``incluster`` command: ``incluster metrics`` here, ``incluster run`` as a plugin.

``incluster metrics PATH`` summarises the metrics of an event file, of one run's outputs
directory (every replica) or of an experiment's directory (it lists the runs and shows
the latest, or ``--run ID``); ``--csv`` prints the full history instead.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from incluster.tracking.events import Metric, read_events
from incluster.tracking.objectstore import StoreError
from incluster.tracking.runs import LEGACY, RunNotFound, choose, list_runs
from incluster.tracking.stats import metric_stats

#: What ``incluster --help`` says the command is.
DESCRIPTION = "Read what ML experiments tracked, and run Experiments on this machine."


def _format(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(rows: list[list[str]], header: list[str], out: TextIO | None = None) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        print(line, file=out or sys.stdout)


def _chosen_path(args: argparse.Namespace) -> str | None:
    """The events to read: ``args.path`` itself, or one run of the experiment there.

    When ``args.path`` holds runs, they are listed (to stderr with ``--csv``, so the
    CSV stays clean) and the chosen one is named. None after printing an error.
    """
    runs = list_runs(args.path)
    if not runs:
        if args.run is not None:
            print(f"incluster metrics: {args.path} holds no runs; drop --run", file=sys.stderr)
            return None
        return str(args.path)
    try:
        run = choose(runs, args.run)
    except RunNotFound as exc:
        print(f"incluster metrics: {exc}", file=sys.stderr)
        return None
    out = sys.stderr if args.csv else sys.stdout
    rows = [
        [
            "*" if r is run else "",
            r.id,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started)),
            str(r.replicas),
        ]
        for r in runs
    ]
    print(f"{len(runs)} run(s) in {args.path}, oldest first:", file=out)
    _table(rows, ["", "run", "started", "replicas"], out)
    which = "the latest" if args.run is None else "chosen with --run"
    legacy = " (the older layout: events/ without a run level)" if run.id == LEGACY else ""
    print(f"showing run {run.id}{legacy}, {which}; --run ID shows another\n", file=out)
    return run.path


def _metrics(args: argparse.Namespace) -> int:
    path = _chosen_path(args)
    if path is None:
        return 2
    try:
        reader = read_events(path)
    except (FileNotFoundError, StoreError) as exc:
        print(f"incluster metrics: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["source", "name", "step", "value", "timestamp"])
        for event in reader:
            if isinstance(event, Metric):
                step = "" if event.step is None else event.step
                writer.writerow([event.source, event.name, step, event.value, event.timestamp])
        return 0
    rows = [
        [s.source, s.name, *map(_format, (s.latest, s.step, s.minimum, s.maximum)), str(s.count)]
        for s in metric_stats(reader)
    ]
    if not rows:
        print(f"no metrics in {path}", file=sys.stderr)
        return 1
    _table(rows, ["source", "metric", "latest", "step", "min", "max", "count"])
    return 0


def _add_metrics(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "metrics",
        help="summarise the metrics of a run (latest, min, max, count per replica)",
        description=(
            "Latest value, min, max and count per metric and replica. Given an "
            "experiment's directory, lists its runs and shows the latest (or --run ID)."
        ),
    )
    parser.add_argument(
        "path",
        help="an event file, a run's outputs or events dir, an experiment's dir, or a run's "
        "outputs URL (s3://, gs://, az://; needs incluster[s3], [gcs] or [azure])",
    )
    parser.add_argument(
        "--run", metavar="ID", help="which run of the experiment (an id or a unique prefix)"
    )
    parser.add_argument("--csv", action="store_true", help="print every point as CSV")
    parser.set_defaults(handler=_metrics)


#: Each entry adds one subcommand of the SDK itself.
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_metrics,
]


#: Entry point group of subcommands shipped outside the SDK (`incluster run` lives in the
#: operator package, which the SDK must not import directly).
PLUGIN_GROUP = "incluster.commands"


_AddCommand = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _missing_extra(name: str, exc: ImportError) -> _AddCommand:
    """A stand-in subcommand that says how to install what the real one needs."""

    def handler(args: argparse.Namespace) -> int:
        print(
            f"incluster {name}: needs the operator extra ({exc}); install it with "
            "pip install 'incluster[operator]'",
            file=sys.stderr,
        )
        return 2

    def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        text = _PLUGIN_HELP.get(name, "a plugin command")
        parser = sub.add_parser(name, help=f"{text} (needs incluster[operator])", add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(handler=handler)

    return add


#: One line per plugin we ship, for ``incluster --help`` (listing a plugin must not import
#: it: the operator's dependencies cost ~0.2 s). Unknown plugins get a generic line.
_PLUGIN_HELP = {
    "run": "run every replica of an Experiment manifest as local processes",
}


def _listed(name: str) -> _AddCommand:
    """A placeholder that lists a plugin in ``incluster --help`` without importing it."""

    def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        text = _PLUGIN_HELP.get(name, f"a plugin command (incluster {name} --help)")
        sub.add_parser(name, help=text, add_help=False)

    return add


def _plugins(command: str | None) -> list[_AddCommand]:
    """Plugins' ``register``: only the chosen command's is imported (the operator's
    dependencies cost ~0.2 s); one whose dependencies are missing explains the fix."""
    from importlib.metadata import entry_points

    found: list[_AddCommand] = []
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name != command:
            found.append(_listed(ep.name))
            continue
        try:
            found.append(ep.load())
        except ImportError as exc:
            found.append(_missing_extra(ep.name, exc))
    return found


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("incluster")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    args = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in args if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="incluster", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"incluster {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in [*_SUBCOMMANDS, *_plugins(command)]:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BrokenPipeError:  # `incluster metrics ... | head`
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
