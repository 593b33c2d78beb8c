"""The runs under an experiment's outputs directory, and which one a reader means.

Every run of an experiment (an Experiment object, identified by its uid, or one
``incluster run``) writes under its own directory,
``<root>/<namespace>/<project>/[<group>/]<experiment>/<run-id>/``, so two runs of one
name never append to each other's event files. A reader pointed at the experiment's
directory must therefore choose a run: the latest by default, or one named by id (a
unique prefix is enough). A directory from the older layout (``events/`` directly in
the experiment's directory) is shown as the run ``legacy``, read as it is, never moved.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from incluster.contract import DIR_EVENTS, EVENTS_SUFFIX

#: Run ids are Kubernetes uids (and uuid4s for `incluster run`): only these name a run
#: directory, so a user's own directory (a group's experiment, ``model/``) never does.
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: The id under which the older layout's events (no run level) are listed.
LEGACY = "legacy"


@dataclass(frozen=True)
class RunDir:
    """One run's directory: its id, where it is, when it started, how many replicas logged."""

    id: str
    path: str
    #: Seconds since the epoch: the earliest ``run start`` record, else the directory's mtime.
    started: float
    replicas: int


def _events(path: str) -> list[str]:
    events = os.path.join(path, DIR_EVENTS)
    if not os.path.isdir(events):
        return []
    return sorted(os.path.join(events, n) for n in os.listdir(events) if n.endswith(EVENTS_SUFFIX))


def _first_time(file: str) -> float | None:
    """The time of a file's first record (its ``run start``), in seconds; None if unreadable."""
    try:
        with open(file, "rb") as f:
            line = f.readline(65536)
        t = json.loads(line).get("t")
    except (OSError, ValueError, AttributeError):
        return None
    return t / 1000 if isinstance(t, int | float) and not isinstance(t, bool) else None


def _run(run_id: str, path: str) -> RunDir:
    files = _events(path)
    times = [t for t in map(_first_time, files) if t is not None]
    started = min(times) if times else os.stat(path).st_mtime
    return RunDir(run_id, path, started, len(files))


def is_run_dir(path: str) -> bool:
    """Whether ``path`` is one run's directory (its name is a run id)."""
    return bool(RUN_ID.match(os.path.basename(os.path.normpath(path)))) and os.path.isdir(path)


def list_runs(path: str | os.PathLike[str]) -> list[RunDir]:
    """The runs directly under an experiment's directory, oldest first.

    The older layout's events (``<path>/events/`` beside run directories, or alone) are
    listed as ``legacy``. A run directory itself, or a path with no runs, gives ``[]``.
    """
    text = os.fspath(path)
    if not os.path.isdir(text) or is_run_dir(text):
        return []
    runs = [
        _run(name, os.path.join(text, name))
        for name in sorted(os.listdir(text))
        if RUN_ID.match(name) and os.path.isdir(os.path.join(text, name))
    ]
    if runs and _events(text):
        runs.append(_run(LEGACY, text))
    return sorted(runs, key=lambda r: (r.started, r.id))


class RunNotFound(LookupError):
    """No run (or more than one) matches the id asked for; the message lists the ids."""


def choose(runs: list[RunDir], run_id: str | None) -> RunDir:
    """The run named by ``run_id`` (an id or a unique prefix of one), else the latest."""
    if not runs:
        raise RunNotFound("no runs")
    if run_id is None:
        return runs[-1]
    matches = [r for r in runs if r.id == run_id] or [r for r in runs if r.id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.id for r in runs)
    what = "matches several runs" if matches else "matches no run"
    raise RunNotFound(f"run {run_id!r} {what}; the runs are: {known}")


__all__ = ["LEGACY", "RUN_ID", "RunDir", "RunNotFound", "choose", "is_run_dir", "list_runs"]
