"""`kubectl get` shows the columns a real cluster shows: CRD printer columns and pod status."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from emulator_crd import GROUP

from devcluster.testing import Cluster, wait_for

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PLURAL = "gauges"
GAUGE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gauge", "kind": "Gauge", "shortNames": ["gg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {
                        "name": "Owner",
                        "type": "string",
                        "jsonPath": ".spec.owners[0].name",
                        "priority": 1,
                        "description": "the first owner",
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def columns(output: str) -> list[dict[str, str]]:
    """kubectl's aligned table as dicts; a cell spans from its header to the next header."""
    header, *lines = output.rstrip("\n").split("\n")
    found = list(re.finditer(r"\S+(?: \S+)*", header))  # "NOMINATED NODE" is one header
    names, starts = [m.group() for m in found], [m.start() for m in found]
    ends = [*starts[1:], None]
    return [
        {
            name: line[start:end].strip()
            for name, start, end in zip(names, starts, ends, strict=True)
        }
        for line in lines
    ]


def apply(cluster: Cluster, tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / f"{doc['kind']}-{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    cluster.kubectl("apply", "-f", str(path))


@pytest.fixture
def gauges(cluster: Cluster, tmp_path: Path) -> Cluster:
    apply(cluster, tmp_path, GAUGE_CRD)
    cluster.kubectl("wait", "--for=condition=established", f"crd/{PLURAL}.{GROUP}", "--timeout=10s")
    return cluster


def gauge(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gauge", "metadata": {"name": name}, "spec": spec}


def test_kubectl_get_shows_the_crd_columns_and_follows_status(
    gauges: Cluster, tmp_path: Path
) -> None:
    apply(gauges, tmp_path, gauge("g1", size=3, owners=[{"name": "ada"}]))
    (row,) = columns(gauges.kubectl("get", "gauges").stdout)
    assert list(row) == ["NAME", "PHASE", "SIZE", "READY", "AGE"]
    assert row["NAME"] == "g1"
    assert row["SIZE"] == "3"
    assert row["PHASE"] == ""  # no status yet: empty, not "<none>"
    assert row["READY"] == ""
    assert row["AGE"].endswith("s")

    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    gauges.kubectl(
        "patch", "gg", "g1", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    (row,) = columns(gauges.kubectl("get", "gg", "g1").stdout)
    assert (row["PHASE"], row["READY"]) == ("Running", "True")

    (wide,) = columns(gauges.kubectl("get", "gauges", "-o", "wide").stdout)
    assert list(wide) == ["NAME", "PHASE", "SIZE", "READY", "OWNER", "AGE"]
    assert wide["OWNER"] == "ada"

    assert gauges.kubectl("get", "gauges", "-o", "name").stdout.split() == [f"gauge.{GROUP}/g1"]
    everywhere = columns(gauges.kubectl("get", "gauges", "--all-namespaces").stdout)
    assert [(r["NAMESPACE"], r["NAME"], r["PHASE"]) for r in everywhere] == [
        (gauges.namespace, "g1", "Running")
    ]


def test_the_table_is_what_kube_apiserver_sends(gauges: Cluster, tmp_path: Path) -> None:
    apply(gauges, tmp_path, gauge("g2", size=5))
    path = f"/apis/{GROUP}/v1/namespaces/{gauges.namespace}/{PLURAL}"
    with gauges.api_client() as client:

        def get(suffix: str = "", **query: str) -> Any:
            request = client.param_serialize(
                "GET",
                path + suffix,
                query_params=list(query.items()),
                header_params={"Accept": TABLE},
                auth_settings=["BearerToken"],
            )
            response = client.call_api(*request)
            response.read()
            assert response.status == 200, response.data
            return json.loads(response.data)

        listed = get()
        assert listed["kind"] == "Table"
        definitions = listed["columnDefinitions"]
        assert [(d["name"], d["type"], d["priority"]) for d in definitions] == [
            ("Name", "string", 0),
            ("Phase", "string", 0),
            ("Size", "integer", 0),
            ("Ready", "string", 0),
            ("Owner", "string", 1),
            ("Age", "date", 0),
        ]
        assert definitions[0]["format"] == "name"
        assert definitions[4]["description"] == "the first owner"
        (row,) = listed["rows"]
        assert row["cells"][:5] == ["g2", None, 5, None, None]
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["name"] == "g2"
        assert "spec" not in row["object"]

        single = get("/g2", includeObject="Object")
        assert single["rows"][0]["object"]["spec"] == {"size": 5}
        assert "object" not in get(includeObject="None")["rows"][0]


def test_a_crd_without_columns_gets_name_and_age(cluster: Cluster, tmp_path: Path) -> None:
    plain = json.loads(json.dumps(GAUGE_CRD))
    plain["metadata"]["name"] = f"dials.{GROUP}"
    plain["spec"]["names"] = {"plural": "dials", "singular": "dial", "kind": "Dial"}
    del plain["spec"]["versions"][0]["additionalPrinterColumns"]
    apply(cluster, tmp_path, plain)
    cluster.kubectl("wait", "--for=condition=established", f"crd/dials.{GROUP}", "--timeout=10s")
    dial = {"apiVersion": f"{GROUP}/v1", "kind": "Dial", "metadata": {"name": "d"}, "spec": {}}
    apply(cluster, tmp_path, dial)
    (row,) = columns(cluster.kubectl("get", "dials").stdout)
    assert list(row) == ["NAME", "AGE"]
    assert row["NAME"] == "d"


def test_a_column_path_outside_the_subset_is_refused_naming_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.emulator  # noqa: B018  (a real apiserver accepts more JSONPath than the emulator)
    bad = json.loads(json.dumps(GAUGE_CRD))
    bad["spec"]["versions"][0]["additionalPrinterColumns"][0]["jsonPath"] = ".status.x[*]"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = cluster.kubectl("apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "spec.versions[0].additionalPrinterColumns[0].jsonPath" in result.stderr
    assert "not a simple JSONPath" in result.stderr


def test_kubectl_get_pods_shows_ready_status_and_restarts(cluster: Cluster) -> None:
    core = kubernetes.client.CoreV1Api()
    body = {"metadata": {"name": "w"}, "spec": {"containers": [{"name": "m", "image": "x"}]}}
    core.create_namespaced_pod(cluster.namespace, body)
    (row,) = columns(cluster.kubectl("get", "pods").stdout)
    assert list(row) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert (row["READY"], row["STATUS"], row["RESTARTS"]) == ("0/1", "Pending", "0")
    cluster.emulator  # noqa: B018  (a real kubelet writes pod status; the test may not)
    running = {
        "phase": "Running",
        "podIP": "127.0.0.7",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "m", "ready": True, "restartCount": 1, "state": {"running": {}}, "image": "x",
             "imageID": "", "lastState": {"terminated": {"exitCode": 1, "finishedAt": None}}}
        ],
    }  # fmt: skip
    core.patch_namespaced_pod_status("w", cluster.namespace, {"status": running})

    def shown() -> dict[str, str] | None:
        (row,) = columns(cluster.kubectl("get", "pods", "-o", "wide").stdout)
        return row if row["STATUS"] == "Running" else None

    row = wait_for(shown, message="the pod shown as Running")
    assert (row["READY"], row["RESTARTS"], row["IP"], row["NODE"]) == (
        "1/1",
        "1",
        "127.0.0.7",
        "<none>",
    )
