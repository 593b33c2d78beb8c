"""Every rendered manifest is valid Kubernetes, checked offline against the API's schemas.

kubernetes-validate ships the OpenAPI-derived JSON schemas per Kubernetes version; strict
mode also rejects unknown fields (a misspelt `readOnlyRootFilesytem` would otherwise be
silently ignored by the API server and the pod would run with a writable root).
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils

from tests.chart.manifests import CHART_DIR, OPTIONS, Manifest, Render

#: The oldest Kubernetes the schemas cover (Chart.yaml's kubeVersion floor) and the newest.
VERSIONS = (utils.all_versions()[0], utils.latest_version())


def validate(manifest: Manifest, version: str) -> None:
    kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_rendered_manifest_is_valid_kubernetes(render: Render, option: str) -> None:
    manifests = render(OPTIONS[option])
    assert manifests
    for manifest in manifests:
        for version in VERSIONS:
            validate(manifest, version)


def test_the_validator_catches_a_misspelt_field(render: Render) -> None:
    """Guard for the test above: strict validation really rejects an unknown field."""
    deployment = next(m for m in render() if m["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, VERSIONS[-1])


def test_chart_kube_version_floor_matches_the_validated_range() -> None:
    chart_yaml = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    oldest = ".".join(VERSIONS[0].split(".")[:2])
    assert chart_yaml["kubeVersion"] == f">={oldest}.0-0"
