"""Fixtures for the chart's tests: the chart rendered by Helm's own engine (helm-python-sdk).

Rendering goes through the same Go code as `helm install`, values.schema.json included, so
a value the schema rejects fails here exactly as it would for an admin.
"""

from __future__ import annotations

from collections.abc import Iterator

import helm_python
import pytest

from tests.chart.manifests import CHART_DIR, Render, render_manifests


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Render:
    def _render(values: dict[str, object] | None = None) -> list[dict[str, object]]:
        return render_manifests(chart, values)

    return _render
