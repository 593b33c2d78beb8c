"""RBAC rule matching for minted tokens, as pure functions (no emulator)."""

from __future__ import annotations

import datetime

import pytest

from devcluster.authz import (
    Attributes,
    allowed,
    binds,
    forbidden_message,
    rule_allows,
    unauthenticated_reason,
    user_of,
)
from devcluster.protocol import IssuedToken

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TOKEN = IssuedToken("ns", "xp-sa", (), NOW + datetime.timedelta(hours=1), "Secret", "s", "u1")
OWN = {
    "apiGroups": ["incluster.dev"],
    "resources": ["experiments", "experiments/status"],
    "resourceNames": ["xp"],
    "verbs": ["get", "patch"],
}


def at(
    verb: str, resource: str, name: str | None = "xp", group: str = "incluster.dev"
) -> Attributes:
    return Attributes(verb, group, resource, "ns", name)


@pytest.mark.parametrize(
    "attributes",
    [
        at("get", "experiments"),
        at("patch", "experiments"),
        at("get", "experiments/status"),
        at("patch", "experiments/status"),
    ],
)
def test_named_rule_allows_its_verbs_on_its_object_and_status(attributes: Attributes) -> None:
    assert rule_allows(OWN, attributes)


@pytest.mark.parametrize(
    "attributes",
    [
        at("get", "experiments", name="other"),
        at("list", "experiments", name=None),  # resourceNames never grant a list
        at("watch", "experiments", name=None),
        at("update", "experiments"),
        at("delete", "experiments"),
        at("create", "experiments", name=None),
        at("get", "experiments/scale"),
        at("get", "pods", group=""),
        at("get", "secrets", group=""),
        at("get", "experiments", group="other.dev"),
    ],
)
def test_named_rule_denies_everything_else(attributes: Attributes) -> None:
    assert not rule_allows(OWN, attributes)


def test_wildcards_match_as_in_kubernetes() -> None:
    everything = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    assert rule_allows(everything, at("deletecollection", "pods", name=None, group=""))
    assert rule_allows(everything, at("get", "pods/log", group="")), "* covers subresources"
    statuses = {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]}
    assert rule_allows(statuses, at("get", "experiments/status"))
    assert not rule_allows(statuses, at("get", "experiments"))


def test_binding_subjects_name_the_service_account() -> None:
    def binding(*subjects: dict[str, str]) -> dict[str, object]:
        return {"metadata": {"namespace": "ns"}, "subjects": list(subjects)}

    assert binds(binding({"kind": "ServiceAccount", "name": "xp-sa"}), TOKEN)
    assert binds(binding({"kind": "ServiceAccount", "name": "xp-sa", "namespace": "ns"}), TOKEN)
    assert binds(binding({"kind": "User", "name": "system:serviceaccount:ns:xp-sa"}), TOKEN)
    assert binds(binding({"kind": "Group", "name": "system:serviceaccounts:ns"}), TOKEN)
    assert not binds(binding({"kind": "ServiceAccount", "name": "other"}), TOKEN)
    assert not binds(binding({"kind": "ServiceAccount", "name": "xp-sa", "namespace": "x"}), TOKEN)
    assert not binds(binding(), TOKEN)


def test_allowed_needs_a_binding_to_an_existing_role_with_a_matching_rule() -> None:
    binding = {
        "metadata": {"namespace": "ns"},
        "roleRef": {"kind": "Role", "name": "xp-role"},
        "subjects": [{"kind": "ServiceAccount", "name": "xp-sa"}],
    }
    roles = {("Role", "xp-role"): {"rules": [OWN]}}
    assert allowed(at("patch", "experiments/status"), TOKEN, [binding], roles)
    assert not allowed(at("get", "experiments", name="other"), TOKEN, [binding], roles)
    assert not allowed(at("get", "experiments"), TOKEN, [], roles), "no binding, no access"
    assert not allowed(at("get", "experiments"), TOKEN, [binding], {}), "role is gone"


def test_expired_or_unbound_tokens_do_not_authenticate() -> None:
    secret = {"metadata": {"uid": "u1"}}
    assert unauthenticated_reason(TOKEN, NOW, secret) is None
    expired = unauthenticated_reason(TOKEN, NOW + datetime.timedelta(hours=1), secret)
    assert expired == "the token has expired"
    assert "no longer exists" in str(unauthenticated_reason(TOKEN, NOW, None))
    assert "replaced" in str(unauthenticated_reason(TOKEN, NOW, {"metadata": {"uid": "u2"}}))
    unbound = TOKEN._replace(bound_kind=None, bound_name=None, bound_uid=None)
    assert unauthenticated_reason(unbound, NOW, None) is None


def test_forbidden_message_reads_like_kube_apiserver() -> None:
    assert forbidden_message(at("get", "experiments", name="other"), user_of(TOKEN)) == (
        'experiments.incluster.dev "other" is forbidden: User '
        '"system:serviceaccount:ns:xp-sa" cannot get resource "experiments" in API group '
        '"incluster.dev" in the namespace "ns"'
    )
    assert forbidden_message(at("list", "pods", name=None, group=""), "u") == (
        'pods is forbidden: User "u" cannot list resource "pods" in API group "" '
        'in the namespace "ns"'
    )
