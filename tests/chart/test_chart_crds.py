"""The chart ships the Experiment CRD generated from the operator's models, and its RBAC and
NOTES speak about that same resource."""

from __future__ import annotations

import helm_python
import kubernetes_validate
import yaml
from incluster_operator import api
from incluster_operator import settings as s
from kubernetes_validate import utils

from tests.chart.manifests import (
    OPTIONS,
    ROOT,
    Render,
    container_env,
    first_experiment,
    install_yaml,
    notes,
    one,
)

SOURCE = ROOT / "crds" / "experiments.incluster.dev.yaml"


def chart_crds(chart: helm_python.Chart) -> list[dict[str, object]]:
    return [yaml.safe_load(crd["data"]) for crd in chart.crds]


def test_helm_installs_the_generated_crd(chart: helm_python.Chart) -> None:
    [entry] = chart.crds
    assert entry["data"] == SOURCE.read_text(), "run `make generate`"
    [crd] = chart_crds(chart)
    kubernetes_validate.validate(crd, utils.latest_version(), strict=True)


def test_rbac_grants_the_crds_resource_and_its_status(
    chart: helm_python.Chart, render: Render
) -> None:
    [crd] = chart_crds(chart)
    spec = crd["spec"]
    assert isinstance(spec, dict)
    group, plural = spec["group"], spec["names"]["plural"]
    assert all("status" in v["subresources"] for v in spec["versions"])
    rules = one(render(), "ClusterRole")["rules"]
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert (group, plural) in granted
    assert (group, f"{plural}/status") in granted


def test_notes_experiment_is_accepted_by_the_operator(
    chart: helm_python.Chart, render: Render
) -> None:
    """The first Experiment an admin pastes passes the operator's own validation."""
    settings = s.from_env(container_env(render()))
    _, experiment = first_experiment(notes(chart, {}))
    assert experiment["apiVersion"] == api.API_VERSION
    assert experiment["kind"] == api.KIND
    api.validate(experiment["spec"], experiment["metadata"]["name"], settings)


def test_install_stream_puts_the_crd_before_the_objects(chart: helm_python.Chart) -> None:
    documents = list(yaml.safe_load_all(install_yaml(chart, OPTIONS["namespaced"])))
    kinds = [d["kind"] for d in documents]
    assert kinds[0] == "CustomResourceDefinition"
    assert sorted(kinds[1:]) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "Secret"]
        + ["Role", "RoleBinding"] * 2
    )
