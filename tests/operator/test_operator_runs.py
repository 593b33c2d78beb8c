"""Run identity in the pure layers: the run id, and refs resolved to one run, recorded."""

from __future__ import annotations

from datetime import UTC, datetime

from incluster_operator import status
from incluster_operator.desired import Desired, admit, ignored_change, run_of
from incluster_operator.render.context import spec_document
from incluster_operator.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "python:3.11"}]}}


def body(status_=None, refs=("first",)):
    return {
        "metadata": {"name": "xp", "namespace": "team", "uid": "uid-xp", "generation": 1},
        "spec": {
            "replicas": {"master": {"template": TEMPLATE}},
            "outputsRefs": {"experiments": list(refs)},
        },
        **({"status": status_} if status_ is not None else {}),
    }


def ref_mount(desired: Desired) -> str:
    pod = desired.render("master", 0)
    (mount,) = [
        m for m in pod["spec"]["containers"][0]["volumeMounts"] if "/experiments/" in m["mountPath"]
    ]
    return str(mount["subPath"])


def test_the_run_id_is_the_uid_unless_the_status_records_one():
    assert run_of({"metadata": {"uid": "u1"}}) == "u1"
    assert run_of({"metadata": {"uid": "u1"}, "status": {"runId": "u1"}}) == "u1"
    assert run_of(None) is None


def test_a_missing_ref_waits_pending_with_a_condition_and_looks_again():
    got = admit(body(), Settings(), NOW, lambda name: None)
    assert isinstance(got, status.Decision)
    assert got.status.phase == "Pending"
    (condition,) = got.status.conditions
    assert (condition.type, condition.status) == ("OutputsRefsReady", "False")
    assert "no Experiment 'first' in namespace 'team'" in condition.message
    assert got.requeue_after == status.REFS_RETRY_SECONDS
    assert [e.reason for e in got.events] == ["OutputsRefNotFound"]
    # The same wait again posts no second event.
    again = admit(body(got.status_patch()), Settings(), NOW, lambda name: None)
    assert isinstance(again, status.Decision)
    assert again.events == ()


def test_a_ref_mounts_the_run_it_resolves_to_and_the_status_records_it():
    asked = []
    got = admit(body(), Settings(), NOW, lambda name: asked.append(name) or "run-1")
    assert isinstance(got, Desired)
    assert asked == ["first"]
    assert got.ref_runs == {"first": "run-1"}
    assert ref_mount(got).endswith("/first/run-1")
    decision = status.reconcile(got.spec, got.meta, [], None, NOW, Settings(), 1, got.ref_runs)
    assert decision.status.outputs_refs_runs == {"first": "run-1"}
    assert decision.status.run_id == "uid-xp"


def test_a_recorded_ref_stays_even_if_the_referenced_experiment_was_recreated():
    """A pod recreated mid-run mounts the same run of the ref as its peers."""
    recorded = {"outputsRefsRuns": {"first": "run-1"}, "phase": "Running"}
    got = admit(body(recorded), Settings(), NOW, lambda name: "run-2")
    assert isinstance(got, Desired)
    assert ref_mount(got).endswith("/first/run-1")


def test_a_new_generation_after_a_failure_before_pods_is_admitted_again():
    failed = {
        "phase": "Failed",
        "observedGeneration": 1,
        "completionTime": "2026-01-01T11:00:00Z",
        "conditions": [
            {"type": t, "status": "True", "reason": "InvalidSpec", "message": "bad",
             "lastTransitionTime": "2026-01-01T11:00:00Z"}
            for t in ("InvalidSpec", "Failed")
        ],
    }  # fmt: skip
    same, event = status.readmit(failed, 1, NOW)
    assert (same, event) == (failed, None)  # the same generation stays failed
    fresh, event = status.readmit(failed, 2, NOW)
    assert fresh is not None
    assert event is not None
    assert event.reason == "SpecChanged"
    assert "phase" not in fresh
    assert "completionTime" not in fresh
    assert {c["type"]: c["status"] for c in fresh["conditions"]} == {
        "InvalidSpec": "False",
        "Failed": "False",
    }


def test_an_edit_of_a_started_run_names_the_fields_and_the_fix():
    started = admit(body(refs=()), Settings(), NOW)
    assert isinstance(started, Desired)
    run_spec = spec_document(started.spec)
    assert ignored_change(body(refs=()), run_spec, Settings()) is None
    edited = body(refs=())
    edited["metadata"]["generation"] = 2
    edited["spec"]["replicas"]["master"]["port"] = 3333
    message = ignored_change(edited, run_spec, Settings())
    assert message is not None
    assert message.startswith("generation 2 changes spec.replicas.master.port while the run")
    assert "delete the Experiment and apply it again" in message
    edited["spec"]["replicas"]["master"]["replicas"] = 2  # invalid (one master)
    invalid = ignored_change(edited, run_spec, Settings())
    assert invalid is not None
    assert "is not valid either (spec.replicas.master.replicas" in invalid


def test_the_status_names_the_project_even_when_it_defaults_to_the_namespace():
    got = admit(body(refs=()), Settings(), NOW)
    assert isinstance(got, Desired)
    decision = status.reconcile(got.spec, got.meta, [], None, NOW, Settings(), 1)
    assert decision.status.project == "team"  # the namespace: spec.project is unset
