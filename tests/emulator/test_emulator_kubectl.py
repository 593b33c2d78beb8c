"""kubectl round trips with no extra flags: apply, get, -o yaml, -l, patch, wait, delete."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from emulator_crd import GROUP, PLURAL, WIDGET_CRD, widget

from devcluster.testing import Cluster

MANIFEST = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo}
data: {level: info}
---
apiVersion: v1
kind: Pod
metadata:
  name: worker
  labels: {app: demo}
spec:
  containers:
  - name: main
    image: busybox
    env: [{name: A, value: "1"}]
"""


def test_kubectl_round_trip_on_built_in_kinds(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(MANIFEST)
    assert "configmap/settings created" in cluster.kubectl("apply", "-f", str(manifest)).stdout
    assert "unchanged" in cluster.kubectl("apply", "-f", str(manifest)).stdout

    listed = cluster.kubectl("get", "configmaps,pods", "-l", "app=demo", "-o", "name").stdout
    assert set(listed.split()) == {"configmap/settings", "pod/worker"}
    table = cluster.kubectl("get", "pods").stdout
    assert table.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "worker" in table

    as_yaml = yaml.safe_load(cluster.kubectl("get", "configmap", "settings", "-o", "yaml").stdout)
    assert as_yaml["data"] == {"level": "info"}
    assert as_yaml["metadata"]["uid"]

    patch = {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}}
    cluster.kubectl("patch", "pod", "worker", "-p", json.dumps(patch))
    env = cluster.kubectl("get", "pod", "worker", "-o", "jsonpath={.spec.containers[0].env}").stdout
    assert [e["name"] for e in json.loads(env)] == ["A", "B"]

    cluster.kubectl(
        "patch", "configmap", "settings", "--type=merge", "-p", '{"data":{"level":"debug"}}'
    )
    cluster.kubectl(
        "wait", "--for=jsonpath={.data.level}=debug", "configmap/settings", "--timeout=10s"
    )

    cluster.kubectl("delete", "-f", str(manifest))
    cluster.kubectl("wait", "--for=delete", "pod/worker", "--timeout=10s")
    left = cluster.kubectl("get", "configmaps", "-l", "app=demo", "-o", "name").stdout
    assert left.strip() == ""


def test_kubectl_applies_a_crd_and_serves_its_kind(cluster: Cluster, tmp_path: Path) -> None:
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(WIDGET_CRD))
    cluster.kubectl("apply", "-f", str(crd_file))
    cluster.kubectl("wait", "--for=condition=established", f"crd/{PLURAL}.{GROUP}", "--timeout=10s")
    obj = tmp_path / "widget.yaml"
    obj.write_text(yaml.safe_dump(widget("w", size=1)))
    cluster.kubectl("apply", "-f", str(obj))
    obj.write_text(yaml.safe_dump(widget("w", size=2)))
    cluster.kubectl("apply", "-f", str(obj))  # a JSON merge patch for custom kinds
    size = cluster.kubectl("get", "wg", "w", "-o", "jsonpath={.spec.size}").stdout
    assert size == "2"
    cluster.kubectl("delete", "widgets", "w")
    assert cluster.kubectl("get", "widgets", "-o", "name").stdout.strip() == ""


def test_protobuf_only_commands_fail_with_a_clear_message(cluster: Cluster) -> None:
    cluster.emulator  # noqa: B018  (a real cluster speaks protobuf: skip there)
    result = cluster.kubectl("create", "configmap", "x", "--from-literal=a=b", check=False)
    assert result.returncode != 0
    assert "protobuf" in result.stderr
    assert "kubectl apply -f" in result.stderr
