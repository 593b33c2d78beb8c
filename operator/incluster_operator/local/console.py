"""What `incluster run` prints: prefixed, colour-coded log lines and a status per replica.

On a terminal the status lines stay at the bottom and are redrawn in place as replicas
change state, with the logs scrolling above them. Elsewhere (a pipe, CI) each status
change is printed once as a plain line, so the output stays a readable log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TextIO

from incluster_operator.local.state import PodState

#: Above this many replicas the live block shows one line per replica type (with counts
#: per phase) instead of one per replica: redrawing thousands of lines per log line
#: would bury the logs.
MAX_LIVE_LINES = 12
#: Bright ANSI colours, cycled over replicas (red is kept for failures).
_COLOURS = ("36", "32", "35", "33", "34", "96", "92", "95", "93", "94")
_RESET = "\x1b[0m"


def describe(state: PodState, now: float | None = None) -> str:
    """One replica's state in a few words: phase, and exit codes or restarts.

    ``now`` adds the running time (the live display redraws it; a log line would not).
    """
    containers = state.containers
    if state.reason == "Stopped":
        return "Stopped"
    if state.phase == "Pending":
        running_init = [c.name for c in state.init_containers if c.state == "running"]
        if running_init:
            return f"Pending  init {running_init[0]}"
        waiting = {c.reason for c in containers if c.state == "waiting"}
        return "Pending" + (f"  {', '.join(sorted(waiting))}" if waiting else "")
    if state.phase == "Running":
        starts = [c.started_at for c in containers if c.started_at is not None]
        age = f"  {now - min(starts):.0f}s" if starts and now is not None else ""
        restarts = sum(c.restart_count for c in containers)
        return "Running" + age + (f"  restarts {restarts}" if restarts else "")
    codes = ", ".join(f"{c.name} exit {c.exit_code}" for c in containers if c.exit_code is not None)
    detail = codes or state.message
    return f"{state.phase}" + (f"  ({detail})" if detail else "")


class Console:
    """Thread-safe printer for many replicas' logs and states."""

    def __init__(
        self,
        out: TextIO,
        replicas: Sequence[str],
        *,
        colour: bool,
        live: bool,
    ) -> None:
        self._out = out
        self._colour = colour
        self._live = live
        self._lock = threading.Lock()
        self._width = max((len(r) for r in replicas), default=0)
        self._colours = {r: _COLOURS[i % len(_COLOURS)] for i, r in enumerate(replicas)}
        self._states: dict[str, str] = dict.fromkeys(replicas, "Pending")
        self._phases: dict[str, str] = {}
        self._drawn = 0

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}{_RESET}" if self._colour else text

    def _prefix(self, replica: str) -> str:
        return self._paint(f"{replica:<{self._width}} |", self._colours.get(replica, "0"))

    def _erase(self) -> None:
        if self._drawn:
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _lines(self) -> list[tuple[str, str]]:
        """(prefix, text) of each status line: per replica, or per type when there are many."""
        if len(self._states) <= MAX_LIVE_LINES:
            return [(self._prefix(r), text) for r, text in self._states.items()]
        counts: dict[str, dict[str, int]] = {}
        for replica in self._states:
            kind = replica.rsplit("-", 1)[0]
            phase = self._phases.get(replica, "Pending")
            counts.setdefault(kind, {}).setdefault(phase, 0)
            counts[kind][phase] += 1
        return [
            (
                self._paint(f"{kind:<{self._width}} |", "1"),
                ", ".join(f"{n} {phase}" for phase, n in sorted(by_phase.items())),
            )
            for kind, by_phase in counts.items()
        ]

    def _draw(self) -> None:
        lines = self._lines()
        for prefix, text in lines:
            code = {"Failed": "31", "Succeeded": "32"}.get(text.split(" ", 1)[0], "2")
            self._out.write(f"{prefix} {self._paint(text, code)}\n")
        self._drawn = len(lines)

    def line(self, replica: str, raw: bytes) -> None:
        """One line of a replica's output, prefixed with its name."""
        text = raw.decode(errors="replace").rstrip("\r\n")
        with self._lock:
            if self._live:
                self._erase()
            self._out.write(f"{self._prefix(replica)} {text}\n")
            if self._live:
                self._draw()
            self._out.flush()

    def status(self, replica: str, state: PodState) -> None:
        """A replica changed state: redraw (terminal) or print the change once (pipe)."""
        text = describe(state, time.time() if self._live else None)
        with self._lock:
            self._states[replica] = text
            changed = self._phases.get(replica) != state.phase
            self._phases[replica] = state.phase
            if self._live:
                self._erase()
                self._draw()
            elif changed:
                self._out.write(f"{self._prefix(replica)} * {text}\n")
            self._out.flush()

    def message(self, text: str) -> None:
        """A line from the runner itself (not a replica)."""
        with self._lock:
            if self._live:
                self._erase()
            self._out.write(f"{text}\n")
            if self._live:
                self._draw()
            self._out.flush()

    def close(self) -> None:
        """Leave the final status lines on screen."""
        with self._lock:
            if self._live:
                self._erase()
                self._draw()
            self._out.flush()
