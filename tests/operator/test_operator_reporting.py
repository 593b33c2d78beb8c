"""The report API's pure decisions: who a reviewed token is, what its pod may do, what a body is.

The same rules run end to end in tests/operator_e2e/test_operator_e2e_report.py; here each
refusal is pinned to its reason on plain dicts.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from incluster_operator import reporting
from incluster_operator.api import names
from incluster_operator.reporting import Caller, PodRef, Refused

UID = "pod-uid-1"
XP_UID = "xp-uid-1"


def review(
    audiences: list[str] | None = None, extra: dict[str, Any] | None = None, **status: Any
) -> dict[str, Any]:
    user = {
        "username": "system:serviceaccount:ns:default",
        "extra": extra
        if extra is not None
        else {reporting.EXTRA_POD_NAME: ["xp-master-0"], reporting.EXTRA_POD_UID: [UID]},
    }
    body = {"authenticated": True, "user": user, "audiences": audiences or ["incluster.dev"]}
    return {"status": {**body, **status}}


def pod(**changes: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "xp-master-0",
        "uid": UID,
        "labels": {
            **names.selector("xp", XP_UID),
            names.LABEL_REPLICA_TYPE: "master",
            names.LABEL_REPLICA_INDEX: "0",
            names.LABEL_MANAGED_BY: names.MANAGED_BY,
        },
        "ownerReferences": [{"uid": XP_UID, "controller": True}],
    }
    meta.update(changes)
    return {"metadata": meta}


def test_a_pod_bound_token_of_our_audience_names_its_pod() -> None:
    assert reporting.review_identity(review(), "incluster.dev") == PodRef("ns", "xp-master-0", UID)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (review(authenticated=False, error="token expired"), "token expired"),
        (review(audiences=["https://kubernetes.default.svc"]), "audience"),
        (review(extra={}), "not a pod's projected"),
        (review(extra={reporting.EXTRA_POD_NAME: ["a", "b"]}), "not a pod's projected"),
        ({"status": "nonsense"}, "not authenticated"),
    ],
)
def test_other_reviews_are_refused_with_401(answer: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refused, match=reason) as refused:
        reporting.review_identity(answer, "incluster.dev")
    assert refused.value.status == 401


def test_the_caller_comes_from_the_stored_pod() -> None:
    caller = reporting.caller_of(PodRef("ns", "xp-master-0", UID), pod())
    assert (caller.experiment, caller.experiment_uid, caller.task_type, caller.index) == (
        "xp",
        XP_UID,
        "master",
        0,
    )


@pytest.mark.parametrize(
    ("stored", "status"),
    [
        (None, 401),
        (pod(uid="another"), 401),
        (pod(deletionTimestamp="2026-01-01T00:00:00Z"), 401),
        (pod(labels={}), 403),
        (pod(ownerReferences=[{"uid": "someone-else", "controller": True}]), 403),
        (pod(name="renamed"), 403),
    ],
)
def test_gone_replaced_or_foreign_pods_are_refused(stored: Any, status: int) -> None:
    ref = PodRef("ns", str(((stored or {}).get("metadata") or {}).get("name", "xp-master-0")), UID)
    with pytest.raises(Refused) as refused:
        reporting.caller_of(ref, stored)
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("replicas", "reporter"),
    [
        ({"chief": {}, "worker": {"replicas": 2}}, ("chief", 0)),
        ({"master": {}, "worker": {"replicas": 2}}, ("master", 0)),
        ({"worker": {"replicas": 2}, "ps": {}}, ("worker", 0)),
        ({"ps": {}}, None),
    ],
)
def test_one_reporter_per_experiment(replicas: dict[str, Any], reporter: Any) -> None:
    assert reporting.reporter(replicas) == reporter


def test_only_declared_references_are_readable() -> None:
    experiment = {"spec": {"outputsRefs": {"experiments": ["prev", "proj/older"]}}}
    assert reporting.referable(experiment, "prev")
    assert reporting.referable(experiment, "older")
    assert not reporting.referable(experiment, "other")
    assert not reporting.referable({"spec": {}}, "prev")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"x" * (reporting.MAX_BODY_BYTES + 1), 413),
        (b"\xff", 400),
        (b"[]", 400),
        (b'{"tracking": []}', 400),
        (b'{"tracking": {}, "experiment": "other"}', 400),
        (b'{"tracking": {"phase": "Succeeded"}}', 400),
        (b'{"tracking": {"metrics": "\\udc80"}}', 400),
        (b'{"tracking": {"metrics": ' + b"[" * 20 + b"]" * 20 + b"}}", 400),
        (b'{"tracking": {"metrics": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", 413),
    ],
)
def test_bodies_are_bounded(body: bytes, status: int) -> None:
    with pytest.raises(Refused) as refused:
        reporting.tracking_document(body)
    assert refused.value.status == status


def test_a_summary_becomes_the_status_document_and_replaces_the_last() -> None:
    document = {"metrics": {"loss": {"value": 1.0, "step": 3}}, "updatedAt": "t"}
    body = json.dumps({"tracking": document}).encode()
    assert reporting.tracking_document(body) == document
    previous = {"metrics": {"acc": {"value": 0.5}}, "tags": ["a"], "updatedAt": "s"}
    assert reporting.with_removals(previous, document) == {
        "metrics": {"loss": {"value": 1.0, "step": 3}, "acc": None},
        "tags": None,
        "updatedAt": "t",
    }


def _caller(uid: str = UID) -> Caller:
    return Caller("ns", "xp-master-0", uid, "xp", XP_UID, "master", 0)


def test_the_review_cache_expires_and_forgets_a_deleted_pod() -> None:
    cache = reporting.ReviewCache(max_entries=2, max_age=10)
    cache.put("a", _caller(), now=0, expires=5)
    cache.put("b", _caller("other"), now=0, expires=None)
    assert cache.get("a", 4) is not None
    assert cache.get("a", 5) is None  # the token expired
    assert cache.get("b", 9) is not None
    assert cache.get("b", 10) is None  # max_age
    cache.put("c", _caller(), now=20, expires=None)
    assert cache.forget_pod(UID) == 1
    assert cache.get("c", 21) is None


def test_a_jwt_expiry_is_read_and_an_opaque_token_has_none() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": 1_900_000_000}).encode()).rstrip(b"=")
    assert reporting.token_expiry(f"h.{payload.decode()}.s") == 1_900_000_000
    assert reporting.token_expiry("devcluster.opaque") is None
    assert reporting.token_expiry("a.!!!.c") is None


def test_the_rate_limiter_allows_bursts_then_spaces_requests() -> None:
    limiter = reporting.RateLimiter(rate=2.0, burst=3)
    assert [limiter.wait_time("xp", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_time("xp", 0.0) == pytest.approx(0.5)
    assert limiter.wait_time("other", 0.0) == 0.0  # per experiment
    assert limiter.wait_time("xp", 0.5) == 0.0
