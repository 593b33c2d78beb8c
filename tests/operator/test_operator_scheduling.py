"""Pure rules of sharing a cluster: restart verdicts, suspend/queue clocks, validation, render."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as hs
from incluster import contract
from incluster_operator import restarts
from incluster_operator import status as st
from incluster_operator.api import InvalidSpec, names, validate
from incluster_operator.api.models import FailurePolicy
from incluster_operator.desired import admit, desired
from incluster_operator.render import scheduling
from test_operator_status import META, NOW, SETTINGS, TEMPLATE, conditions, pod, run

POLICY = FailurePolicy(restart_experiment=True, max_restarts=2)


def spec_of(workers=2, suspend=False, scheduling_policy=None, failure_policy=None, **extra):
    raw = {
        "project": "p",
        "replicas": {
            "master": {"template": TEMPLATE},
            "worker": {"replicas": workers, "template": TEMPLATE},
        },
        "suspend": suspend,
        **extra,
    }
    if scheduling_policy is not None:
        raw["schedulingPolicy"] = scheduling_policy
    if failure_policy is not None:
        raw["runPolicy"] = {"failurePolicy": failure_policy}
    return validate(raw, "xp", SETTINGS)


def with_attempt(p, attempt):
    p["metadata"]["labels"][names.LABEL_ATTEMPT] = str(attempt)
    return p


def gated(p):
    p["spec"] = {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]}
    p["status"]["phase"] = "Pending"
    return p


# -- restarts.decide ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "signals", "exit_code", "expected"),
    [
        ((), (), 137, True),  # default: killed by a signal
        ((), (), 1, False),
        ((), (), None, True),  # no exit code: nothing blames the program
        ((1,), (), 1, True),
        ((1,), (), 137, False),  # lists given: exactly those
        ((), (9,), 137, True),
        ((), (9,), 143, False),
    ],
)
def test_retriable_codes_and_signals(codes, signals, exit_code, expected):
    policy = FailurePolicy(
        restart_experiment=True,
        max_restarts=1,
        retriable_exit_codes=list(codes),
        retriable_signals=list(signals),
    )
    assert restarts.retriable(policy, exit_code) is expected


def test_no_failure_is_no_verdict():
    assert restarts.decide(POLICY, [], 0) is None


def test_a_retriable_failure_restarts_and_is_counted():
    verdict = restarts.decide(POLICY, [restarts.Failure("xp-worker-1", 137)], 0)
    assert verdict is not None
    assert (verdict.action, verdict.counted) == ("restart", True)
    assert "restart 1 of 2" in verdict.message


def test_a_non_retriable_failure_beside_a_retriable_one_fails_at_once():
    failures = [restarts.Failure("xp-worker-0", 137), restarts.Failure("xp-worker-1", 2)]
    verdict = restarts.decide(POLICY, failures, 0)
    assert verdict is not None
    assert (verdict.action, verdict.reason) == ("fail", "PodFailed")
    assert "xp-worker-1" in verdict.message


def test_the_bound_fails_once_used_up():
    verdict = restarts.decide(POLICY, [restarts.Failure("xp-worker-1", 137)], 2)
    assert verdict is not None
    assert (verdict.action, verdict.reason) == ("fail", "RestartLimitExceeded")


def test_a_disruption_restarts_without_spending_a_restart():
    verdict = restarts.decide(POLICY, [restarts.Failure("xp-worker-1", 1, disrupted=True)], 2)
    assert verdict is not None
    assert (verdict.action, verdict.counted) == ("restart", False)


# -- status: restartExperiment ------------------------------------------------------------


def test_a_restart_writes_the_new_attempt_first_and_deletes_nothing_yet():
    spec = spec_of(failure_policy={"restartExperiment": True, "maxRestarts": 2})
    pods = [pod("master", 0), pod("worker", 0), pod("worker", 1, "Failed", exit_code=137)]
    got = run(spec, pods, {"phase": "Running", "startTime": "2026-01-01T11:00:00Z"})
    assert (got.status.phase, got.status.attempt, got.status.experiment_restarts) == (
        "Restarting",
        2,
        1,
    )
    assert got.delete == ()
    assert got.create == ()
    assert got.requeue_after == 0.0
    # The next round deletes the previous attempt's pods and waits until they are gone.
    again = run(spec, pods, got.status_patch())
    assert again.delete == ("xp-master-0", "xp-worker-0", "xp-worker-1")
    assert again.create == ()
    assert again.status.phase == "Restarting"
    # Gone: attempt 2 is created.
    fresh = run(spec, [], again.status_patch())
    assert fresh.create == (("master", 0), ("worker", 0), ("worker", 1))


def test_pods_of_the_current_attempt_are_judged_and_old_ones_only_deleted():
    spec = spec_of(failure_policy={"restartExperiment": True, "maxRestarts": 2})
    previous = {"phase": "Restarting", "attempt": 2, "startTime": "2026-01-01T11:00:00Z"}
    old = pod("worker", 1, "Failed", exit_code=1)  # attempt 1 (no label): not a verdict
    current = [with_attempt(pod("master", 0), 2), with_attempt(pod("worker", 0), 2)]
    got = run(spec, [*current, old], previous)
    assert got.status.phase == "Restarting"
    assert got.delete == ("xp-worker-1",)
    assert got.create == ()


# -- status: suspend ----------------------------------------------------------------------


def test_suspend_deletes_every_pod_keeps_the_status_and_pauses_the_clock():
    spec = spec_of(suspend=True)
    previous = {"phase": "Running", "startTime": "2026-01-01T11:00:00Z", "failures": 1}
    pods = [pod("master", 0), pod("worker", 0), pod("worker", 1, deleting=True)]
    got = run(spec, pods, previous)
    assert got.status.phase == "Suspended"
    assert got.delete == ("xp-master-0", "xp-worker-0")
    assert got.create == ()
    assert got.status.failures == 1
    assert got.status.start_time == "2026-01-01T11:00:00Z"
    assert got.status.paused_since == "2026-01-01T12:00:00Z"
    assert conditions(got)["Suspended"].status == "True"
    assert [e.reason for e in got.events] == ["Suspended"]
    # Idempotent: a second look posts nothing new.
    assert run(spec, [], got.status_patch()).events == ()


def test_resume_adds_the_suspended_time_to_the_paused_seconds():
    suspended = run(
        spec_of(suspend=True), [], {"phase": "Running", "startTime": "2026-01-01T11:00:00Z"}
    )
    later = NOW + timedelta(minutes=10)
    got = run(spec_of(), [], suspended.status_patch(), now=later)
    assert got.create == (("master", 0), ("worker", 0), ("worker", 1))
    assert got.status.paused_since is None
    assert got.status.paused_seconds == 600
    assert got.status_patch()["pausedSince"] is None  # the merge patch removes it
    assert conditions(got)["Suspended"].status == "False"
    assert "Resumed" in [e.reason for e in got.events]


def test_the_deadline_does_not_count_suspended_time():
    raw_deadline = {"activeDeadlineSeconds": 3600}
    spec = validate(
        {
            "project": "p",
            "replicas": {"master": {"template": TEMPLATE}},
            "runPolicy": raw_deadline,
        },
        "xp",
        SETTINGS,
    )
    previous = {"phase": "Running", "startTime": "2026-01-01T11:30:00Z", "pausedSeconds": 1800}
    got = run(spec, [pod("master", 0)], previous)  # 30 min elapsed, 30 min of it paused
    assert got.status.phase == "Running"
    assert got.requeue_after == 3600.0
    over = run(spec, [pod("master", 0)], previous, now=NOW + timedelta(hours=1))
    assert over.status.phase == "Failed"


def test_an_experiment_created_suspended_has_not_started():
    got = run(spec_of(suspend=True), [], None)
    assert got.status.phase == "Suspended"
    assert got.status.start_time is None
    assert "Created" not in conditions(got)


# -- status: queued -----------------------------------------------------------------------


def test_gated_pods_are_queued_and_the_deadline_waits():
    spec = spec_of()
    pods = [gated(pod("master", 0)), gated(pod("worker", 0)), gated(pod("worker", 1))]
    got = run(spec, pods, {"phase": "Pending", "startTime": "2026-01-01T11:00:00Z"})
    assert got.status.phase == "Queued"
    assert got.create == ()
    assert got.delete == ()  # the gates are Kueue's: the pods are left alone
    assert "kueue.x-k8s.io/admission" in conditions(got)["Queued"].message
    assert got.status.paused_since == "2026-01-01T12:00:00Z"
    admitted = run(spec, [pod("master", 0), pod("worker", 0), pod("worker", 1)], got.status_patch(),
                   now=NOW + timedelta(seconds=90))  # fmt: skip
    assert admitted.status.phase == "Running"
    assert conditions(admitted)["Queued"].status == "False"
    assert admitted.status.paused_seconds == 90


def test_a_disrupted_pod_is_recreated_without_counting_a_failure():
    spec = spec_of()
    failed = pod("worker", 1, "Failed", exit_code=143)
    failed["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    got = run(spec, [pod("master", 0), pod("worker", 0), failed], {"phase": "Running"})
    assert got.status.phase != "Failed"
    assert got.delete == ("xp-worker-1",)
    assert got.status.failures == 0
    assert [e.reason for e in got.events][:1] == ["PodDisrupted"]


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduling_policy", "failure_policy", "field", "fix"),
    [
        ({"scheduler": "kube-batch"}, None, "spec.schedulingPolicy.scheduler", "volcano"),
        (
            {"minAvailable": 4, "scheduler": "volcano"},
            None,
            "spec.schedulingPolicy.minAvailable",
            "at most 3",
        ),
        ({"minAvailable": 2}, None, "spec.schedulingPolicy.minAvailable", "set"),
        ({"queue": "-bad"}, None, "spec.schedulingPolicy.queue", "DNS label"),
        ({"priorityClass": "Hi!"}, None, "spec.schedulingPolicy.priorityClass", "lowercase"),
        (None, {"restartExperiment": True}, "spec.runPolicy.failurePolicy.maxRestarts", "set"),
        (None, {"maxRestarts": 3}, "spec.runPolicy.failurePolicy.restartExperiment", "true"),
    ],
)
def test_bad_scheduling_input_names_the_field_and_the_fix(
    scheduling_policy, failure_policy, field, fix
):
    with pytest.raises(InvalidSpec) as caught:
        spec_of(scheduling_policy=scheduling_policy, failure_policy=failure_policy)
    (problem,) = caught.value.problems
    assert problem.startswith(field)
    assert fix in problem


def test_a_bad_queue_label_on_the_experiment_is_invalid():
    raw = {"project": "p", "replicas": {"master": {"template": TEMPLATE}}}
    with pytest.raises(InvalidSpec, match=re.escape("metadata.labels.kueue.x-k8s.io/queue-name")):
        validate(raw, "xp", SETTINGS, queue_label="Team A")


def test_restart_experiment_wants_replicas_that_never_restart_alone():
    raw = {
        "project": "p",
        "replicas": {"master": {"template": TEMPLATE, "restartPolicy": "ExitCode"}},
        "runPolicy": {"failurePolicy": {"restartExperiment": True, "maxRestarts": 1}},
    }
    with pytest.raises(InvalidSpec, match=r"spec.replicas.master.restartPolicy: .*set Never"):
        validate(raw, "xp", SETTINGS)


# -- render -------------------------------------------------------------------------------


def body(spec_raw, labels=None, status=None):
    metadata = {"name": "xp", "namespace": "team", "uid": META.uid, "labels": labels or {}}
    return {"metadata": metadata, "spec": spec_raw, "status": status or {}}


RAW = {
    "project": "p",
    "replicas": {"master": {"template": TEMPLATE}, "worker": {"replicas": 2, "template": TEMPLATE}},
}


def test_pods_carry_the_attempt_in_label_env_and_experiment_info():
    got = desired(body(RAW, status={"attempt": 3}), SETTINGS)
    pod_ = got.render("worker", 1)
    assert pod_["metadata"]["labels"][names.LABEL_ATTEMPT] == "3"
    env = {e["name"]: e["value"] for e in pod_["spec"]["containers"][0]["env"]}
    assert env[contract.ENV_ATTEMPT] == "3"
    assert '"attempt":3' in env[contract.ENV_EXPERIMENT_INFO]
    # The context files are experiment-wide and the same for every attempt.
    first = desired(body(RAW), SETTINGS)
    assert first.children[1]["data"] == got.children[1]["data"]


def test_kueue_labels_come_from_the_queue_or_the_experiment_label():
    by_label = desired(body(RAW, labels={scheduling.KUEUE_QUEUE_LABEL: "q"}), SETTINGS)
    by_spec = desired(body({**RAW, "schedulingPolicy": {"queue": "q"}}), SETTINGS)
    for got in (by_label, by_spec):
        meta = got.render("master", 0)["metadata"]
        assert meta["labels"][scheduling.KUEUE_QUEUE_LABEL] == "q"
        assert meta["labels"][scheduling.KUEUE_GROUP_LABEL] == "xp"
        assert meta["annotations"][scheduling.KUEUE_TOTAL_ANNOTATION] == "3"
    plain = desired(body(RAW), SETTINGS).render("master", 0)["metadata"]
    assert scheduling.KUEUE_QUEUE_LABEL not in plain["labels"]
    assert "annotations" not in plain


def test_no_scheduler_no_podgroup_and_no_scheduler_name():
    got = desired(body(RAW), SETTINGS)
    assert [c["kind"] for c in got.children if c["kind"] == "PodGroup"] == []
    assert "schedulerName" not in got.render("master", 0)["spec"]


def test_a_conflicting_template_is_an_invalid_spec_not_an_override():
    template = {"metadata": {"labels": {scheduling.KUEUE_QUEUE_LABEL: "other"}}, **TEMPLATE}
    raw = {
        **RAW,
        "replicas": {"master": {"template": template}},
        "schedulingPolicy": {"queue": "q"},
    }
    got = admit(body(raw), SETTINGS, NOW)
    assert isinstance(got, st.Decision)
    assert got.status.phase == "Failed"
    assert "spec.replicas.master.template.metadata.labels" in conditions(got)["InvalidSpec"].message


def kueue_member(p):
    p["metadata"]["labels"][scheduling.KUEUE_GROUP_LABEL] = "xp"
    return p


def test_a_kueue_group_that_will_not_succeed_is_released_once():
    spec = spec_of()
    failed = kueue_member(pod("master", 0, "Failed", exit_code=1))
    pods = [failed, kueue_member(pod("worker", 0)), kueue_member(pod("worker", 1))]
    got = run(spec, pods, {"phase": "Running", "startTime": "2026-01-01T11:00:00Z"})
    assert got.status.phase == "Failed"
    assert got.release_group == ("xp-master-0",)
    assert run(spec, pods, got.status_patch()).release_group == ()


def test_a_kueue_group_whose_pods_all_succeeded_needs_no_release():
    spec = spec_of()
    pods = [
        kueue_member(pod(t, i, "Succeeded"))
        for t, i in (("master", 0), ("worker", 0), ("worker", 1))
    ]
    got = run(spec, pods, {"phase": "Running", "startTime": "2026-01-01T11:00:00Z"})
    assert got.status.phase == "Succeeded"
    assert got.release_group == ()
    # The master decides while workers still run: they are deleted, so Kueue is told.
    early = [kueue_member(pod("master", 0, "Succeeded")), kueue_member(pod("worker", 0)),
             kueue_member(pod("worker", 1))]  # fmt: skip
    assert run(spec, early, {"phase": "Running"}).release_group == ("xp-master-0",)


@given(
    failures=hs.lists(
        hs.tuples(hs.one_of(hs.none(), hs.integers(1, 255)), hs.booleans()), max_size=4
    ),
    used=hs.integers(0, 4),
    bound=hs.integers(0, 4),
    codes=hs.lists(hs.integers(1, 255), max_size=3),
    signals=hs.lists(hs.integers(1, 64), max_size=2),
)
def test_a_restart_verdict_never_exceeds_the_bound_nor_retries_a_permanent_failure(
    failures, used, bound, codes, signals
):
    policy = FailurePolicy(
        restart_experiment=True,
        max_restarts=bound,
        retriable_exit_codes=codes,
        retriable_signals=signals,
    )
    pods = [restarts.Failure(f"xp-worker-{i}", code, hit) for i, (code, hit) in enumerate(failures)]
    verdict = restarts.decide(policy, pods, used)
    assert (verdict is None) == (not pods)
    if verdict is None:
        return
    permanent = [f for f in pods if not f.disrupted and not restarts.retriable(policy, f.exit_code)]
    if permanent:
        assert (verdict.action, verdict.reason) == ("fail", "PodFailed")
    if verdict.action == "restart" and verdict.counted:
        assert used < bound
    if verdict.action == "restart" and not verdict.counted:
        assert all(f.disrupted for f in pods)
