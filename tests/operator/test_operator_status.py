"""status.reconcile(): pods + previous status + now -> new status and the actions to take."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from incluster_operator import status as st
from incluster_operator.api import InvalidSpec, names, validate
from incluster_operator.render import ExperimentMeta
from incluster_operator.settings import Settings

META = ExperimentMeta(name="xp", namespace="team", uid="uid-xp")
SETTINGS = Settings()
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "python:3.11"}]}}


def make_spec(leader="master", workers=2, ps=1, restart="Never", **run_policy):
    replicas = {"worker": {"replicas": workers, "restartPolicy": restart, "template": TEMPLATE}}
    if leader:
        replicas[leader] = {"template": TEMPLATE, "restartPolicy": restart}
    if ps:
        replicas["ps"] = {"template": TEMPLATE}
    raw = {"project": "p", "replicas": replicas, "runPolicy": run_policy}
    return validate(raw, "xp", SETTINGS)


def pod(task_type, index, phase="Running", exit_code=None, restarts=0, deleting=False, uid=None):
    container = {"name": "main", "restartCount": restarts, "state": {}}
    if exit_code is not None:
        container["state"] = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
    metadata = {
        "name": f"xp-{task_type}-{index}",
        "uid": uid or f"uid-{task_type}-{index}",
        "labels": {
            **names.selector("xp", META.uid),
            names.LABEL_REPLICA_TYPE: task_type,
            names.LABEL_REPLICA_INDEX: str(index),
        },
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    return {"metadata": metadata, "status": {"phase": phase, "containerStatuses": [container]}}


def all_pods(spec, phase="Running", **overrides):
    """One pod per replica; overrides maps pod name -> pod."""
    pods = {
        f"xp-{t}-{i}": pod(t, i, phase) for t, r in spec.replicas.items() for i in range(r.replicas)
    }
    pods.update(overrides)
    return list(pods.values())


def run(spec, pods, previous=None, now=NOW, settings=SETTINGS):
    return st.reconcile(spec, META, pods, previous, now, settings)


def conditions(decision):
    return {c.type: c for c in decision.status.conditions}


def test_a_new_experiment_creates_every_pod():
    spec = make_spec()
    got = run(spec, [])
    assert got.create == (("master", 0), ("ps", 0), ("worker", 0), ("worker", 1))
    assert got.status.phase == "Pending"
    assert got.status.start_time == "2026-01-01T12:00:00Z"
    assert got.status.outputs_path == "/outputs/team/p/xp/uid-xp"
    assert got.status.run_id == "uid-xp"
    assert got.status.ready == "0/4"
    assert conditions(got)["Created"].status == "True"
    assert [e.reason for e in got.events] == ["ExperimentPending"]


def test_only_missing_pods_are_created():
    spec = make_spec()
    got = run(spec, [pod("master", 0), pod("worker", 1, "Pending")])
    assert got.create == (("ps", 0), ("worker", 0))


def test_all_pods_running_is_running():
    spec = make_spec()
    first = run(spec, [])
    got = run(spec, all_pods(spec), first.status_patch(), NOW + timedelta(seconds=5))
    assert got.status.phase == "Running"
    assert got.status.ready == "4/4"
    assert got.status.replica_statuses["worker"].active == 2
    assert got.create == got.delete == ()
    assert conditions(got)["Running"].status == "True"
    assert got.status.start_time == first.status.start_time


def test_reconciling_twice_changes_nothing():
    spec = make_spec()
    pods = all_pods(spec)
    first = run(spec, pods)
    second = run(spec, pods, first.status_patch(), NOW + timedelta(seconds=30))
    assert second.status == first.status
    assert second.events == ()


@pytest.mark.parametrize(
    ("clean", "deleted"),
    [("Running", ("xp-ps-0", "xp-worker-1")), ("All", None), ("None", ())],
)
def test_the_master_decides_success_and_cleanup_follows_the_policy(clean, deleted):
    spec = make_spec(cleanPodPolicy=clean)
    pods = all_pods(
        spec,
        **{
            "xp-master-0": pod("master", 0, "Succeeded"),
            "xp-worker-0": pod("worker", 0, "Succeeded"),
        },
    )
    got = run(spec, pods)
    assert got.status.phase == "Succeeded"
    assert got.status.completion_time == "2026-01-01T12:00:00Z"
    assert conditions(got)["Succeeded"].reason == "ExperimentSucceeded"
    assert conditions(got)["Running"].status == "False"
    expected = tuple(sorted(p["metadata"]["name"] for p in pods)) if deleted is None else deleted
    assert got.delete == expected
    assert got.create == ()


def test_a_worker_finishing_first_does_not_end_a_master_led_experiment():
    spec = make_spec()
    got = run(spec, all_pods(spec, **{"xp-worker-0": pod("worker", 0, "Succeeded")}))
    assert got.status.phase == "Running"


def test_without_a_master_worker_zero_decides():
    spec = make_spec(leader=None)
    assert (
        run(spec, all_pods(spec, **{"xp-worker-1": pod("worker", 1, "Succeeded")})).status.phase
        == "Running"
    )
    assert (
        run(spec, all_pods(spec, **{"xp-worker-0": pod("worker", 0, "Succeeded")})).status.phase
        == "Succeeded"
    )


@pytest.mark.parametrize("via", ["spec", "settings"])
def test_all_workers_policy_waits_for_every_worker(via):
    spec = make_spec(leader=None, **({"successPolicy": "allWorkers"} if via == "spec" else {}))
    settings = Settings(success_policy="allWorkers") if via == "settings" else SETTINGS
    one = all_pods(spec, **{"xp-worker-0": pod("worker", 0, "Succeeded")})
    assert run(spec, one, settings=settings).status.phase == "Running"
    both = all_pods(
        spec,
        **{
            "xp-worker-0": pod("worker", 0, "Succeeded"),
            "xp-worker-1": pod("worker", 1, "Succeeded"),
        },
    )
    assert run(spec, both, settings=settings).status.phase == "Succeeded"


def test_a_failed_pod_with_restart_policy_never_fails_the_experiment():
    spec = make_spec()
    got = run(spec, all_pods(spec, **{"xp-worker-1": pod("worker", 1, "Failed", exit_code=2)}))
    assert got.status.phase == "Failed"
    failed = conditions(got)["Failed"]
    assert failed.reason == "PodFailed"
    assert "xp-worker-1" in failed.message
    assert "exit code 2" in failed.message
    assert got.events[-1].type == "Warning"
    assert got.delete == ("xp-master-0", "xp-ps-0", "xp-worker-0")


def test_exit_code_policy_recreates_a_killed_pod_once():
    spec = make_spec(restart="ExitCode", backoffLimit=3)
    killed = pod("worker", 1, "Failed", exit_code=137, uid="dead-1")
    first = run(spec, all_pods(spec, **{"xp-worker-1": killed}))
    assert first.status.phase == "Pending"
    assert first.delete == ("xp-worker-1",)
    assert first.create == ()
    assert first.status.failures == 1
    assert first.status.retried_pods == ["dead-1"]
    assert conditions(first)["Restarting"].status == "True"
    assert "PodRecreated" in [e.reason for e in first.events]
    # A lagging watch shows the same failed pod again: not counted twice.
    again = run(spec, all_pods(spec, **{"xp-worker-1": killed}), first.status_patch())
    assert again.status.failures == 1
    assert again.delete == ("xp-worker-1",)  # asked again in case the delete was lost
    assert again.events == ()
    # While it is being deleted nothing is created (the name is still taken).
    deleting = pod("worker", 1, "Failed", exit_code=137, uid="dead-1", deleting=True)
    assert run(spec, all_pods(spec, **{"xp-worker-1": deleting}), first.status_patch()).create == ()
    # Once it is gone, it is recreated.
    gone = [p for p in all_pods(spec) if p["metadata"]["name"] != "xp-worker-1"]
    later = run(spec, gone, first.status_patch())
    assert later.create == (("worker", 1),)
    assert later.status.retried_pods == []
    assert later.status.failures == 1
    # And when it is up again the experiment runs and is no longer restarting.
    up = run(spec, all_pods(spec), later.status_patch())
    assert up.status.phase == "Running"
    assert conditions(up)["Restarting"].status == "False"


def test_exit_code_policy_fails_on_a_permanent_exit_code():
    spec = make_spec(restart="ExitCode")
    got = run(spec, all_pods(spec, **{"xp-worker-0": pod("worker", 0, "Failed", exit_code=1)}))
    assert got.status.phase == "Failed"
    assert "not retryable" in conditions(got)["Failed"].message


def test_backoff_limit_bounds_recreations():
    spec = make_spec(restart="ExitCode", backoffLimit=1)
    first = run(spec, all_pods(spec, **{"xp-worker-0": pod("worker", 0, "Failed", exit_code=143)}))
    assert first.status.phase == "Pending"
    second = run(
        spec,
        all_pods(spec, **{"xp-worker-0": pod("worker", 0, "Failed", exit_code=143, uid="new")}),
        first.status_patch(),
    )
    assert second.status.phase == "Failed"
    assert conditions(second)["Failed"].reason == "BackoffLimitExceeded"
    assert "backoffLimit=1" in conditions(second)["Failed"].message


def test_container_restarts_count_against_the_backoff_limit():
    spec = make_spec(restart="OnFailure", backoffLimit=2)
    ok = run(spec, all_pods(spec, **{"xp-worker-0": pod("worker", 0, restarts=2)}))
    assert ok.status.phase == "Running"
    assert ok.status.restarts == 2
    over = run(spec, all_pods(spec, **{"xp-worker-0": pod("worker", 0, restarts=3)}))
    assert over.status.phase == "Failed"
    assert conditions(over)["Failed"].reason == "BackoffLimitExceeded"


def test_the_active_deadline_fails_a_running_experiment():
    spec = make_spec(activeDeadlineSeconds=60)
    first = run(spec, [])
    assert first.requeue_after == 60
    later = run(spec, all_pods(spec), first.status_patch(), NOW + timedelta(seconds=45))
    assert later.status.phase == "Running"
    assert later.requeue_after == 15
    late = run(spec, all_pods(spec), later.status_patch(), NOW + timedelta(seconds=61))
    assert late.status.phase == "Failed"
    assert conditions(late)["Failed"].reason == "DeadlineExceeded"
    assert set(late.delete) == {p["metadata"]["name"] for p in all_pods(spec)}


def test_ttl_after_finished_deletes_the_experiment_when_due():
    spec = make_spec(ttlSecondsAfterFinished=60)
    done = run(spec, all_pods(spec, **{"xp-master-0": pod("master", 0, "Succeeded")}))
    assert done.requeue_after == 60
    assert not done.delete_experiment
    soon = run(spec, [], done.status_patch(), NOW + timedelta(seconds=20))
    assert (soon.delete_experiment, soon.requeue_after) == (False, 40)
    assert soon.status.phase == "Succeeded"
    assert soon.create == ()
    due = run(spec, [], done.status_patch(), NOW + timedelta(seconds=60))
    assert due.delete_experiment is True


def test_a_finished_experiment_never_creates_pods_again():
    spec = make_spec()
    done = run(spec, all_pods(spec, **{"xp-master-0": pod("master", 0, "Succeeded")}))
    got = run(spec, [], done.status_patch(), NOW + timedelta(hours=1))
    assert got.create == ()
    assert got.status.completion_time == done.status.completion_time
    # The outcome stays; READY and the counts are of the pods that exist (none now).
    assert got.status.phase == done.status.phase
    assert got.status.conditions == done.status.conditions
    assert got.status.ready == "0/4"
    assert all(r == st.ReplicaStatus() for r in got.status.replica_statuses.values())


def test_ready_after_cleanup_counts_no_deleted_pod():
    """`deadline Failed 4/4` was wrong: the running pods are being deleted."""
    spec = make_spec(activeDeadlineSeconds=10)
    started = run(spec, all_pods(spec))
    assert started.status.ready == "4/4"
    late = run(spec, all_pods(spec), started.status_patch(), NOW + timedelta(seconds=11))
    assert late.status.phase == "Failed"
    assert sorted(late.delete) == ["xp-master-0", "xp-ps-0", "xp-worker-0", "xp-worker-1"]
    assert late.status.ready == "0/4"
    # A crash: the failed pod stays (cleanPodPolicy Running), the running ones go.
    crashed = all_pods(spec, **{"xp-worker-1": pod("worker", 1, "Failed", exit_code=1)})
    failed = run(spec, crashed, started.status_patch())
    assert failed.status.phase == "Failed"
    assert failed.status.ready == "0/4"
    assert failed.status.replica_statuses["worker"] == st.ReplicaStatus(failed=1)


def test_pods_beyond_the_spec_are_deleted():
    spec = make_spec(workers=1)
    got = run(spec, all_pods(spec, **{"xp-worker-5": pod("worker", 5)}))
    assert got.delete == ("xp-worker-5",)


def test_a_malformed_previous_status_is_replaced():
    spec = make_spec()
    got = run(spec, [], {"phase": "Exploded", "conditions": "nope"})
    assert got.status.phase == "Pending"


def test_transition_time_moves_only_when_the_status_flips():
    conds = st.set_condition([], "Running", True, "A", "a", NOW)
    later = NOW + timedelta(minutes=1)
    same = st.set_condition(conds, "Running", True, "B", "b", later)
    assert same[0].last_transition_time == "2026-01-01T12:00:00Z"
    assert same[0].reason == "B"
    flipped = st.set_condition(same, "Running", False, "C", "c", later)
    assert flipped[0].last_transition_time == "2026-01-01T12:01:00Z"


def test_an_invalid_spec_fails_with_a_condition_and_creates_nothing():
    error = InvalidSpec(["spec.replicas.worker.replicas: Input should be >= 1; use a value >= 1"])
    got = st.invalid(error, None, NOW, generation=3)
    assert got.status.phase == "Failed"
    assert got.create == got.delete == ()
    cond = conditions(got)
    assert cond["InvalidSpec"].status == "True"
    assert cond["Failed"].reason == "InvalidSpec"
    assert "spec.replicas.worker.replicas" in cond["InvalidSpec"].message
    assert [e.reason for e in got.events] == ["InvalidSpec"]
    patch = got.status_patch()
    assert patch["phase"] == "Failed"
    assert patch["observedGeneration"] == 3
    again = st.invalid(error, patch, NOW + timedelta(minutes=5), generation=3)
    assert again.events == ()
    assert again.status == got.status


def test_a_blocked_child_fails_once_and_keeps_its_first_completion_time():
    """A name taken or a pod rejected: Failed with one event, idempotent like ``invalid``."""
    running = {"phase": "Running", "startTime": "2026-01-01T11:00:00Z"}
    got = st.blocked(running, "ChildConflict", "service team/xp exists and is not ours", NOW)
    assert got.status.phase == "Failed"
    assert got.create == got.delete == ()
    assert conditions(got)["Failed"].reason == "ChildConflict"
    assert [(e.type, e.reason) for e in got.events] == [("Warning", "ChildConflict")]
    patch = got.status_patch()
    assert patch["completionTime"] == "2026-01-01T12:00:00Z"
    assert patch["startTime"] == "2026-01-01T11:00:00Z"
    later = NOW + timedelta(minutes=5)
    again = st.blocked(patch, "ChildConflict", "service team/xp exists and is not ours", later)
    assert again.events == ()
    assert again.status == got.status


def test_pods_without_replica_labels_are_ignored():
    assert st.observe({"metadata": {"name": "other", "labels": {}}}) is None
    bad_index = pod("worker", 0)
    bad_index["metadata"]["labels"][names.LABEL_REPLICA_INDEX] = "x"
    assert st.observe(bad_index) is None


def test_status_patch_leaves_tracking_to_the_replicas():
    spec = make_spec()
    got = run(spec, [], {"tracking": {"metrics": {"loss": 0.1}}})
    assert got.status.tracking == {"metrics": {"loss": 0.1}}
    assert "tracking" not in got.status_patch()
    assert got.status_patch()["startTime"] == "2026-01-01T12:00:00Z"


pod_strategy = hs.builds(
    pod,
    task_type=hs.sampled_from(["master", "worker", "ps"]),
    index=hs.integers(0, 3),
    phase=hs.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown"]),
    exit_code=hs.none() | hs.sampled_from([1, 2, 137, 143]),
    restarts=hs.integers(0, 4),
    deleting=hs.booleans(),
    uid=hs.sampled_from(["a", "b", "c", "d"]),
)


@settings(max_examples=300, deadline=None)
@given(
    pods=hs.lists(pod_strategy, max_size=8),
    restart=hs.sampled_from(["Never", "OnFailure", "ExitCode"]),
    clean=hs.sampled_from(["None", "Running", "All"]),
    elapsed=hs.integers(0, 200),
    rounds=hs.integers(1, 3),
)
def test_any_pod_set_gives_a_consistent_decision(pods, restart, clean, elapsed, rounds):
    spec = make_spec(
        restart=restart, backoffLimit=2, activeDeadlineSeconds=100, cleanPodPolicy=clean
    )
    previous = None
    names_present = {p["metadata"]["name"] for p in pods}
    for i in range(rounds):
        got = run(spec, pods, previous, NOW + timedelta(seconds=elapsed + i))
        assert got.status.phase in ("Pending", "Running", "Succeeded", "Failed")
        assert set(got.delete) <= names_present
        for task_type, index in got.create:
            assert f"xp-{task_type}-{index}" not in names_present
        if got.status.phase in ("Succeeded", "Failed"):
            assert got.create == ()
            assert got.status.completion_time is not None
        assert got.status.failures <= spec.run_policy.backoff_limit + 1
        previous = got.status_patch()
