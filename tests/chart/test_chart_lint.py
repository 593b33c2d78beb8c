"""Helm's own linter, and the NOTES an admin reads after `helm install`."""

from __future__ import annotations

import helm_python
import pytest

from tests.chart.manifests import (
    CHART_DIR,
    OPTIONS,
    RELEASE,
    RELEASE_NAMESPACE,
    first_experiment,
    notes,
)

WARNING = 2


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_lint_finds_no_warnings_or_errors(option: str) -> None:
    report = helm_python.lint(CHART_DIR, OPTIONS[option], strict=True, namespace="ns")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


def test_notes_tell_how_to_check_the_install(chart: helm_python.Chart) -> None:
    text = notes(chart, {})
    assert "kubectl get crd experiments.incluster.dev" in text
    assert f"kubectl -n {RELEASE_NAMESPACE} rollout status deployment/{RELEASE}-incluster" in text
    assert "incluster-outputs" in text


def test_notes_apply_the_first_experiment_in_a_watched_namespace(
    chart: helm_python.Chart,
) -> None:
    namespace, experiment = first_experiment(notes(chart, OPTIONS["namespaced"]))
    assert namespace == "team-b"
    assert experiment["apiVersion"] == "incluster.dev/v1alpha1"
    assert experiment["kind"] == "Experiment"
    assert first_experiment(notes(chart, {}))[0] == "default"
