"""The ``incluster`` command. Subcommands register themselves in ``_SUBCOMMANDS``.

``incluster metrics PATH`` summarises the metrics of an event file or of a run's
outputs directory (every replica); ``--csv`` prints the full history instead.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Sequence

from incluster.tracking.events import Metric, read_events
from incluster.tracking.objectstore import StoreError
from incluster.tracking.stats import metric_stats


def _format(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _metrics(args: argparse.Namespace) -> int:
    try:
        reader = read_events(args.path)
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
        print(f"no metrics in {args.path}", file=sys.stderr)
        return 1
    header = ["source", "metric", "latest", "step", "min", "max", "count"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _add_metrics(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "metrics",
        help="summarise logged metrics",
        description="Latest value, min, max and count per metric (per replica file).",
    )
    parser.add_argument(
        "path",
        help="an event file, a run's events dir or its outputs dir, or its outputs URL "
        "(s3://, gs://, az://; needs incluster[s3], [gcs] or [azure])",
    )
    parser.add_argument("--csv", action="store_true", help="print every point as CSV")
    parser.set_defaults(handler=_metrics)


#: Each entry adds one subcommand; a later `incluster run` appends here.
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
        parser = sub.add_parser(name, help="(needs incluster[operator])", add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(handler=handler)

    return add


def _listed(name: str) -> _AddCommand:
    """A placeholder that lists a plugin in ``incluster --help`` without importing it."""

    def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        sub.add_parser(name, help=f"see `incluster {name} --help`", add_help=False)

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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    args = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in args if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="incluster", description=__doc__.splitlines()[0])
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
