"""Helpers over the chart's rendered manifests, shared by the chart's tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "incluster"
RELEASE = "xp"
RELEASE_NAMESPACE = "incluster-system"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def render_manifests(
    chart: helm_python.Chart,
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
) -> list[Manifest]:
    """Every object the chart would install (templates only; CRDs come from crds/)."""
    rendered = chart.render(values or {}, name=release, namespace=namespace)
    manifests: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def one(manifests: list[Manifest], kind: str) -> Manifest:
    """The single object of ``kind``; fails when there are none or several."""
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[m['metadata']['name'] for m in found]}"
    return found[0]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def operator_container(manifests: list[Manifest]) -> Manifest:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: Manifest = containers[0]
    return container


def container_env(manifests: list[Manifest]) -> dict[str, str]:
    """The operator container's env as a mapping; every entry must be a literal value."""
    env = operator_container(manifests)["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    assert all(isinstance(e.get("value"), str) for e in env), "env values must be strings"
    return {e["name"]: e["value"] for e in env}


def notes(chart: helm_python.Chart, values: dict[str, object]) -> str:
    rendered = chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE)
    return rendered["incluster/templates/NOTES.txt"]


def first_experiment(text: str) -> tuple[str, dict[str, Any]]:
    """The namespace and the Experiment that NOTES tells the admin to paste into kubectl."""
    match = re.search(r"<<'YAML' \| kubectl -n (\S+) apply -f -\n(.*?)\n  YAML\n", text, re.S)
    assert match, text
    document = yaml.safe_load(match.group(2))
    assert isinstance(document, dict)
    return match.group(1), document


Grant = set[tuple[str, str, str]]

#: Rights the chart grants for paths the RBAC scenarios do not take; each is exercised
#: elsewhere. The exact tests allow only these to go unused:
#: - delete on a child that an earlier Experiment of the same name left behind (deleted,
#:   not yet collected): tests/e2e/test_e2e_chain.py (a recreated experiment);
#: - Volcano's PodGroups: tests/operator_e2e/test_operator_e2e_scheduling.py.
UNEXERCISED: Grant = {
    ("", "services", "delete"),
    ("", "configmaps", "delete"),
    ("scheduling.x-k8s.io", "podgroups", "delete"),
    ("scheduling.volcano.sh", "podgroups", "get"),
    ("scheduling.volcano.sh", "podgroups", "create"),
    ("scheduling.volcano.sh", "podgroups", "delete"),
}


def rbac_grants(rules: list[dict[str, Any]]) -> Grant:
    """(apiGroup, resource, verb) triples, so rules can be compared whatever their grouping.

    The end-to-end suite compares these with the requests the operator really sends.
    """
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


#: One values set per chart option (besides the defaults), shared by the tests that render
#: every option: env parsing, Kubernetes schema validation, lint.
OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watch": {"allNamespaces": False, "namespaces": ["team-b", "team-a"]}},
    "outputs-hostpath": {"outputs": {"store": "hostPath", "hostPath": "/srv/out"}},
    "outputs-emptydir": {"outputs": {"store": "emptyDir"}},
    "outputs-object-store": {
        "outputs": {"store": "objectStore", "url": "s3://ml-bucket/team", "uploadSeconds": 5}
    },
    "data-stores": {
        "dataStores": {"imagenet": {"claim": "imagenet-pvc"}, "raw": {"hostPath": "/mnt/raw"}},
        "dataMountPath": "/datasets",
        "refsMountPath": "/references",
        "contextMountPath": "/run/ctx",
    },
    "tuning": {
        "report": {
            "audience": "ml.example",
            "tokenSeconds": 900,
            "port": 9443,
            "certificateDays": 30,
        },
        "summarySyncSeconds": 2.5,
        "inlineEnvMaxBytes": 65536,
        "clusterDomain": "corp.example",
        "addressing": "loopback",
        "evaluatorInCluster": True,
        "successPolicy": "allWorkers",
        "polyaxonEnv": True,
    },
    "log-debug": {"logLevel": "debug"},
    "log-warning": {"logLevel": "warning"},
    "image-digest": {
        "image": {"repository": "registry.example/ml/incluster", "digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "regcred"}],
    },
    "scheduling": {
        "replicas": 0,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/scrape": "false"},
        "podLabels": {"team": "ml"},
        "serviceAccount": {"name": "ml-operator", "annotations": {"iam.example/role": "r"}},
        "health": {"port": 9090},
    },
    "openshift-uids": {"podSecurityContext": {"runAsUser": None, "runAsGroup": None}},
}


def install_yaml(
    chart: helm_python.Chart,
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
) -> str:
    """What `helm install` would create, as one stream for `kubectl apply -f -`: CRDs first."""
    crds = [crd["data"] for crd in chart.crds]
    manifests = render_manifests(chart, values, release=release, namespace=namespace)
    objects = [yaml.safe_dump(m, sort_keys=False) for m in manifests]
    return "---\n".join(text if text.endswith("\n") else text + "\n" for text in crds + objects)


def operator_invocation(manifests: list[Manifest]) -> tuple[list[str], dict[str, str]]:
    """The operator container's argv and env, to run it as a local process (e2e tests)."""
    container = operator_container(manifests)
    return list(container["command"]), container_env(manifests)
