"""values.schema.json rejects bad values at install time, naming the field.

Helm validates values before rendering, so each case goes through Chart.render exactly as
`helm install --set ...` would, and the message must point at the offending field.
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.chart.manifests import CHART_DIR, ROOT, render_manifests

BAD_VALUES: list[tuple[dict[str, Any], str, str]] = [
    ({"replicas": 2}, "/replicas", "maximum"),
    ({"replicas": "one"}, "/replicas", "integer"),
    ({"watch": {"allNamespaces": False, "namespaces": []}}, "/watch/namespaces", "minItems"),
    ({"watch": {"namespaces": ["team-a"]}}, "/watch/namespaces", "maxItems"),
    ({"watch": {"allNamespaces": False, "namespaces": ["Team_A"]}}, "/watch/namespaces/0", ""),
    ({"outputs": {"store": "s3"}}, "/outputs/store", ""),
    ({"outputs": {"store": "pvc", "claimName": ""}}, "/outputs/claimName", ""),
    ({"outputs": {"store": "hostPath", "hostPath": "relative/dir"}}, "/outputs/hostPath", ""),
    ({"outputs": {"store": "hostPath", "hostPath": "/a/../etc"}}, "/outputs/hostPath", ""),
    ({"outputs": {"mountPath": "outputs"}}, "/outputs/mountPath", ""),
    ({"dataStores": {"Bad_Name": {"claim": "pvc"}}}, "Bad_Name", ""),
    ({"dataStores": {"raw": {"claim": "pvc", "hostPath": "/d"}}}, "/dataStores/raw", ""),
    ({"dataStores": {"raw": {"bucket": "s3://x"}}}, "/dataStores/raw", ""),
    ({"report": {"tokenSeconds": 60}}, "/report/tokenSeconds", "minimum"),
    ({"summarySyncSeconds": 0}, "/summarySyncSeconds", ""),
    ({"inlineEnvMaxBytes": 200000}, "/inlineEnvMaxBytes", "maximum"),
    ({"clusterDomain": "Cluster.Local."}, "/clusterDomain", ""),
    ({"addressing": "ipv6"}, "/addressing", ""),
    ({"logLevel": "verbose"}, "/logLevel", ""),
    ({"image": {"digest": "sha256:abc"}}, "/image/digest", ""),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", ""),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem", ""),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation", ""),
    ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, "/capabilities/add", ""),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot", ""),
    ({"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser", "minimum"),
    ({"health": {"port": 80}}, "/health/port", "minimum"),
    ({"tokenTTLSeconds": 900}, "tokenTTLSeconds", "additional"),
]


@pytest.mark.parametrize(
    ("values", "field", "constraint"), BAD_VALUES, ids=[str(v) for v, _, _ in BAD_VALUES]
)
def test_bad_values_are_rejected_naming_the_field(
    chart: helm_python.Chart, values: dict[str, Any], field: str, constraint: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_manifests(chart, values)
    message = str(caught.value)
    assert "values don't meet the specifications of the schema" in message
    assert field in message
    assert constraint in message


def test_schema_accepts_the_chart_defaults(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.values)


def test_every_default_value_is_described_by_the_schema(chart: helm_python.Chart) -> None:
    """additionalProperties: false at the top means a value missing from the schema fails."""
    schema = chart.schema
    assert schema is not None
    assert schema["additionalProperties"] is False
    assert set(chart.values) <= set(schema["properties"])


def test_lint_reports_bad_values_as_errors() -> None:
    report = helm_python.lint(CHART_DIR, {"replicas": 3})
    assert report["errors"], report
    assert any("/replicas" in m["error"] for m in report["messages"] if m["severity"] == 3)


def test_install_docs_describe_every_value(chart: helm_python.Chart) -> None:
    docs = (ROOT / "docs" / "install.md").read_text()
    missing = [key for key in chart.values if f"`{key}" not in docs]
    assert missing == [], "document these values in docs/install.md"
