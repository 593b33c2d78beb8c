"""Per-metric statistics over event records (what ``incluster metrics`` prints)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from incluster.tracking.events import Event, Metric


@dataclass(frozen=True, slots=True)
class MetricStats:
    """Latest point and range of one metric of one source (replica).

    ``minimum``/``maximum`` ignore NaN (a NaN loss should not hide the best value) and
    are NaN only when every point is.
    """

    source: str
    name: str
    latest: float | int
    step: int | None
    minimum: float | int
    maximum: float | int
    count: int


def metric_stats(events: Iterable[Event]) -> list[MetricStats]:
    """Fold metric records into one ``MetricStats`` per (source, name), in first-seen order."""
    table: dict[tuple[str, str], MetricStats] = {}
    for event in events:
        if not isinstance(event, Metric):
            continue
        key = (event.source, event.name)
        value = event.value
        old = table.get(key)
        if old is None:
            table[key] = MetricStats(*key, value, event.step, value, value, 1)
            continue
        is_nan = isinstance(value, float) and math.isnan(value)
        lo, hi = old.minimum, old.maximum
        if not is_nan:
            lo = value if math.isnan(lo) or value < lo else lo
            hi = value if math.isnan(hi) or value > hi else hi
        table[key] = MetricStats(*key, value, event.step, lo, hi, old.count + 1)
    return list(table.values())
