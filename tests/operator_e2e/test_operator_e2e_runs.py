"""Runs through the operator: identity, re-apply, ignored edits, refs to the latest run."""

from __future__ import annotations

from typing import Any

import pytest
from incluster_operator.api.models import GROUP, PLURAL, VERSION
from operator_e2e_harness import Kube, experiment, replica

from devcluster.testing import wait_for

pytestmark = pytest.mark.cluster


def _patch_spec(kube: Kube, name: str, spec: dict[str, Any]) -> None:
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube.namespace, PLURAL, name, {"spec": spec}
    )


def _generation(kube: Kube, name: str) -> int:
    return int((kube.get(name) or {})["metadata"]["generation"])


def _observed(kube: Kube, name: str) -> dict[str, Any]:
    """The status once it describes the current generation."""
    return kube.wait_status(
        name,
        lambda s: s.get("observedGeneration") == _generation(kube, name),
        "observedGeneration is the current generation",
    )


def test_reapply_after_invalid_spec_runs_and_succeeds(kube: Kube) -> None:
    # Valid for the API server's schema, refused by the operator: one master only.
    kube.create(experiment("fixme", {"master": replica(2)}))
    failed = kube.wait_phase("fixme", "Failed")
    assert failed["observedGeneration"] == 1
    assert (
        "spec.replicas.master.replicas" in (kube.condition("fixme", "InvalidSpec") or {})["message"]
    )
    assert not kube.pods("fixme")

    _patch_spec(kube, "fixme", {"replicas": {"master": replica(1)}})
    kube.wait_pods("fixme", 1)
    status = kube.wait_phase("fixme", "Pending")
    assert status["observedGeneration"] == 2
    assert "completionTime" not in status
    assert (kube.condition("fixme", "InvalidSpec") or {})["status"] == "False"
    kube.set_pods("fixme", "Succeeded")
    kube.wait_phase("fixme", "Succeeded")
    wait_for(
        lambda: ("Normal", "SpecChanged") in {(t, r) for t, r, _ in kube.events("fixme")},
        message="the SpecChanged Event",
    )


def test_a_still_invalid_reapply_names_the_new_problem(kube: Kube) -> None:
    kube.create(experiment("twice", {"master": replica(2)}))
    kube.wait_phase("twice", "Failed")
    _patch_spec(kube, "twice", {"replicas": {"master": replica(1), "launcher": replica(1)}})
    status = _observed(kube, "twice")
    assert status["phase"] == "Failed"
    message = (kube.condition("twice", "InvalidSpec") or {})["message"]
    assert "spec.replicas.launcher" in message
    assert not kube.pods("twice")


def test_an_edit_of_a_running_experiment_is_reported_not_applied(kube: Kube) -> None:
    kube.create(experiment("live", {"master": replica(), "worker": replica(2)}))
    kube.wait_pods("live", 3)
    kube.set_pods("live", "Running")
    kube.wait_phase("live", "Running")
    _patch_spec(kube, "live", {"replicas": {"master": replica(), "worker": replica(5)}})
    status = _observed(kube, "live")
    ignored = next(c for c in status["conditions"] if c["type"] == "SpecChangeIgnored")
    assert ignored["status"] == "True"
    assert "spec.replicas.worker.replicas" in ignored["message"]
    assert "delete the Experiment and apply it again" in ignored["message"]
    # The Event follows the status write (k8s.apply: status, then events).
    wait_for(
        lambda: ("Warning", "SpecChangeIgnored") in {(t, r) for t, r, _ in kube.events("live")},
        message="the SpecChangeIgnored Event",
    )
    # The run goes on with the spec it started with: three pods, and it can still end.
    assert len(kube.pods("live")) == 3
    assert status["ready"] == "3/3"
    kube.set_pods("live", "Succeeded")
    kube.wait_phase("live", "Succeeded")
    assert len(kube.pods("live")) <= 3


def test_a_recreated_experiment_is_a_new_run_and_refs_follow_the_latest(kube: Kube) -> None:
    first = kube.create(experiment("base"))
    run1 = kube.wait_status("base", lambda s: "runId" in s, "a run id")["runId"]
    assert run1 == first["metadata"]["uid"]
    kube.delete("base")
    wait_for(lambda: kube.get("base") is None, message="base deleted")
    second = kube.create(experiment("base"))
    status = kube.wait_status("base", lambda s: "runId" in s, "a run id")
    run2 = status["runId"]
    assert run2 == second["metadata"]["uid"] != run1
    assert status["outputsPath"].endswith(f"/tests/base/{run2}")
    wide = kube.cluster.kubectl("--namespace", kube.namespace, "get", "xp", "base", "-o", "wide")
    header, row = wide.stdout.splitlines()
    assert header.split()[-1] == "RUN"
    assert row.split()[-1] == run2

    user = experiment("user")
    user["spec"]["outputsRefs"] = {"experiments": ["base"]}
    kube.create(user)
    (pod,) = kube.wait_pods("user", 1).values()
    (mount,) = [m for m in pod.spec.containers[0].volume_mounts if "/experiments/" in m.mount_path]
    assert mount.sub_path == f"{kube.namespace}/tests/base/{run2}"
    kube.wait_status("user", lambda s: s.get("outputsRefsRuns") == {"base": run2}, "refs recorded")


def test_a_ref_to_a_missing_experiment_waits_for_it(kube: Kube) -> None:
    user = experiment("early")
    user["spec"]["outputsRefs"] = {"experiments": ["later"]}
    kube.create(user)
    kube.wait_phase("early", "Pending")
    waiting = kube.condition("early", "OutputsRefsReady") or {}
    assert waiting["status"] == "False"
    assert "no Experiment 'later'" in waiting["message"]
    assert not kube.pods("early")
    kube.create(experiment("later"))
    kube.wait_pods("early", 1, timeout=30)
    ready = kube.wait_status(
        "early",
        lambda s: any(
            c["type"] == "OutputsRefsReady" and c["status"] == "True"
            for c in s.get("conditions") or []
        ),
        "refs resolved",
    )
    assert set(ready["outputsRefsRuns"]) == {"later"}
