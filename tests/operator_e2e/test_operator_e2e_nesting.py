"""No accepted object can stop the operator: a deeply nested or huge Experiment fails alone.

The API server accepts JSON nested up to 10,000 levels. Such an Experiment once made kopf's
watcher raise RecursionError and the operator exit (after every restart too), stopping
reconciliation in every namespace. Now it fails with an InvalidSpec condition naming the
field, and an ordinary Experiment beside it runs and succeeds.

The test itself never parses the deep object (kubectl creates and reads it): the
operator shares this process, so the test must not lend it a recursion budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from operator_e2e_harness import Kube, experiment, replica

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster

#: Just below the API server's own limit (10,000 levels for the whole object).
DEPTH = 9_900


def _deep_manifest(kube: Kube, path: Path) -> Path:
    manifest = experiment("deep", {"master": replica()})
    manifest["metadata"]["namespace"] = kube.namespace
    manifest["spec"]["declarations"] = {"nested": "@DEEP@"}
    deep = '{"a":' * DEPTH + '"leaf"' + "}" * DEPTH
    path.write_text(json.dumps(manifest).replace('"@DEEP@"', deep))
    return path


def _jsonpath(kube: Kube, name: str, expression: str) -> str:
    return kube.cluster.kubectl(
        "--namespace", kube.namespace, "get", "xp", name, "-o", f"jsonpath={expression}"
    ).stdout


def test_a_deeply_nested_experiment_fails_alone(kube: Kube, tmp_path: Path) -> None:
    manifest = _deep_manifest(kube, tmp_path / "deep.json")
    kube.cluster.kubectl("--namespace", kube.namespace, "create", "-f", str(manifest))
    kube.create(experiment("plain", {"master": replica()}))
    wait_for(
        lambda: _jsonpath(kube, "deep", "{.status.phase}") == "Failed",
        timeout=30,
        message="the deep experiment Failed",
    )
    failed = '{.status.conditions[?(@.type=="Failed")]}'
    condition = json.loads(_jsonpath(kube, "deep", failed))
    assert condition["reason"] == "InvalidSpec"
    assert "spec.declarations: nested more than 64 levels deep" in condition["message"]
    assert kube.pods("deep") == {}
    kube.wait_pods("plain", 1)
    kube.set_pods("plain", "Succeeded")
    kube.wait_phase("plain", "Succeeded", timeout=30)
    # One more Experiment after it: the operator still reconciles.
    kube.create(experiment("after", {"master": replica()}))
    kube.wait_pods("after", 1)


def test_a_megabyte_of_declarations_fails_alone(kube: Kube) -> None:
    """About 1.2 MiB of hyperparameters: accepted by the API server (its limit is 3 MiB a
    request, 1.5 MiB in etcd), too large for the context ConfigMap (1 MiB)."""
    big = experiment("big", {"master": replica()})
    big["spec"]["declarations"] = {f"k{i}": "x" * 1000 for i in range(1200)}
    kube.create(big)
    kube.create(experiment("small", {"master": replica()}))
    failed = kube.wait_phase("big", "Failed", timeout=30)
    condition = next(c for c in failed["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "InvalidSpec"
    assert "shrink spec.declarations" in condition["message"]
    assert kube.pods("big") == {}
    kube.wait_pods("small", 1)
