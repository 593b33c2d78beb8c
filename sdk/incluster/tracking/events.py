"""Reading event files back as typed records.

The reader is the other half of the format documented in docs/tracking.md. It is
tolerant where the writer cannot be: a line cut by a power loss (or by a disk that
filled up mid-write and could not be truncated) is skipped, counted in ``skipped`` and
reported with one warning per file, and the records around it are still returned.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from incluster.contract import DIR_EVENTS as EVENTS_DIR
from incluster.contract import EVENTS_SUFFIX

_NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


@dataclass(frozen=True, slots=True)
class Metric:
    """One point; ``value`` is NaN/inf again where the line holds "NaN"/"Infinity"."""

    source: str
    name: str
    value: float | int
    step: int | None
    timestamp: float


@dataclass(frozen=True, slots=True)
class Inputs:
    """Parameters logged by ``log_inputs``/``log_params`` (merged in the summary)."""

    source: str
    values: dict[str, Any]
    timestamp: float
    #: True when the call asked to replace what was logged before (``reset=True``).
    reset: bool = False


@dataclass(frozen=True, slots=True)
class Outputs:
    """Results logged by ``log_outputs(**results)``."""

    source: str
    values: dict[str, Any]
    timestamp: float
    #: True when the call asked to replace what was logged before (``reset=True``).
    reset: bool = False


@dataclass(frozen=True, slots=True)
class Tags:
    """Tags of one ``log_tags`` call."""

    source: str
    tags: list[str]
    timestamp: float
    reset: bool = False


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """``path`` is relative to the outputs path when inside it, else absolute."""

    source: str
    name: str
    kind: str
    path: str
    hash: str | None
    timestamp: float
    #: The object-store URL when the outputs live in a store (or the ref is a URL).
    url: str | None = None


@dataclass(frozen=True, slots=True)
class DataRef:
    """A data set's content hash (``sha256:<hex>``), for lineage across runs."""

    source: str
    name: str
    hash: str
    timestamp: float
    reset: bool = False


@dataclass(frozen=True, slots=True)
class RunStarted:
    """First record a process writes; ``format`` is the line format's version."""

    source: str
    task_type: str
    task_index: int
    pid: int
    format: int
    timestamp: float
    #: The whole-experiment attempt that wrote the file (1 when the record has none).
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class RunEnded:
    """Written by ``end()``; ``dropped`` counts records lost to a failing disk."""

    source: str
    status: str
    dropped: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class Unknown:
    """A record of a kind this reader does not know (written by a newer SDK)."""

    source: str
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


Event = Metric | Inputs | Outputs | Tags | ArtifactRef | DataRef | RunStarted | RunEnded | Unknown


def _number(value: Any) -> float | int:
    if isinstance(value, str):
        return _NONFINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metric value {value!r} is not a number")
    return value


def _text(value: Any) -> str:
    """A name as written by the SDK: a string that is valid UTF-8 (no lone surrogate)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a name")
    value.encode("utf-8")  # UnicodeEncodeError is a ValueError
    return value


def _step(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"step {value!r} is not an int")


def decode(line: bytes | str, source: str = "") -> Event:
    """One line -> one record; ValueError/KeyError when it is not a valid record.

    Every field a consumer sorts, compares or prints is type-checked here, so a line of
    garbage (or nested thousands deep) is one skipped line, never a crash.
    """
    try:
        raw = json.loads(line)
    except RecursionError:
        raise ValueError("an event line nested too deep") from None
    if not isinstance(raw, dict):
        raise ValueError("an event line must hold a JSON object")
    kind = raw["k"]
    stamp = raw.get("t", 0)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise ValueError(f"timestamp {stamp!r} is not a number")
    t = stamp / 1000
    if kind == "metric":
        return Metric(source, _text(raw["n"]), _number(raw["v"]), _step(raw["s"]), t)
    if kind == "inputs":
        return Inputs(source, raw["values"], t, raw.get("reset") is True)
    if kind == "outputs":
        return Outputs(source, raw["values"], t, raw.get("reset") is True)
    if kind == "tags":
        return Tags(source, raw["tags"], t, raw.get("reset") is True)
    if kind == "artifact":
        return ArtifactRef(
            source, raw["n"], raw["kind"], raw["path"], raw.get("hash"), t, raw.get("url")
        )
    if kind == "data":
        return DataRef(source, raw["n"], raw["hash"], t, raw.get("reset") is True)
    if kind == "run" and raw.get("event") == "start":
        task = raw["task"]
        return RunStarted(
            source, task["type"], task["index"], raw["pid"], raw["format"], t, raw.get("attempt", 1)
        )
    if kind == "run" and raw.get("event") == "end":
        return RunEnded(source, raw["status"], raw["dropped"], t)
    return Unknown(source, str(kind), raw)


def event_files(path: str | os.PathLike[str]) -> list[str]:
    """The event files named by ``path``: a file, an events dir, or an outputs dir."""
    text = os.fspath(path)
    if os.path.isfile(text):
        return [text]
    if not os.path.isdir(text):
        raise FileNotFoundError(f"{text} is neither an event file nor a directory")
    events_dir = os.path.join(text, EVENTS_DIR)
    directory = events_dir if os.path.isdir(events_dir) else text
    files = sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name.endswith(EVENTS_SUFFIX)
    )
    if not files:
        from incluster.tracking.runs import list_runs

        runs = list_runs(text)
        if runs:
            # An experiment's directory: which run is meant is the caller's choice.
            raise FileNotFoundError(
                f"{text} holds {len(runs)} run(s), not events; read one run's directory "
                f"({os.path.join(text, runs[-1].id)} is the latest) or use "
                "incluster.tracking.runs.list_runs"
            )
    return files


def _local_lines(file: str) -> Iterator[bytes]:
    with open(file, "rb") as f:
        yield from f


class EventReader:
    """An iterator over the records of one or more event files.

    ``path`` may also be an object-store URL (``s3://...``: an outputs URL), read through
    fsspec: each replica's uploaded segments, in order (docs/tracking.md).

    ``skipped`` counts lines that were not valid records (a torn last line after a
    power loss, or garbage); each file with such lines gets one ``RuntimeWarning``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        text = os.fspath(path)
        self._sources: list[tuple[str, str, Callable[[], Iterable[bytes]]]]
        if "://" in text:
            from incluster.tracking import objectstore  # fsspec only for a URL

            if not objectstore.is_url(text):
                raise FileNotFoundError(f"{text} is not an s3://, gs:// or az:// URL")
            segments = objectstore.event_segments(text)
            if not segments:
                raise FileNotFoundError(f"{text} holds no event files (no {EVENTS_DIR}/)")
            self.files = [objectstore.join(text, EVENTS_DIR, r) for r in sorted(segments)]
            self._sources = [
                (replica, url, partial(objectstore.read_lines, objects))
                for (replica, objects), url in zip(
                    sorted(segments.items()), self.files, strict=True
                )
            ]
        else:
            self.files = event_files(path)
            self._sources = [
                (os.path.basename(f).removesuffix(EVENTS_SUFFIX), f, partial(_local_lines, f))
                for f in self.files
            ]
        self.skipped = 0
        self._iterator = self._records()

    def __iter__(self) -> EventReader:
        return self

    def __next__(self) -> Event:
        return next(self._iterator)

    def _records(self) -> Iterator[Event]:
        for source, file, lines in self._sources:
            bad: list[int] = []
            for number, line in enumerate(lines(), start=1):
                if not line.endswith(b"\n"):
                    bad.append(number)  # cut short: the write never completed
                    continue
                try:
                    record = decode(line, source)
                except (ValueError, KeyError, TypeError):
                    bad.append(number)
                    continue
                yield record
            if bad:
                self.skipped += len(bad)
                warnings.warn(
                    f"{file}: skipped {len(bad)} incomplete or invalid line(s) "
                    f"(line {', '.join(map(str, bad[:5]))}{'...' if len(bad) > 5 else ''})",
                    RuntimeWarning,
                    stacklevel=3,
                )


def read_events(path: str | os.PathLike[str]) -> EventReader:
    """Iterate the typed records under ``path`` (file, events dir or outputs dir)."""
    return EventReader(path)
