"""RBAC for the tokens the emulator minted, as pure functions over stored objects.

Why only minted tokens: every other caller (the kubeconfig's admin, anonymous test
clients, made-up bearer strings) must behave exactly as before, so the emulator asks
these functions only when the bearer is one of its own TokenRequest tokens. Then it
answers as kube-apiserver would: 401 for an expired token or one whose bound object is
gone, 403 unless a RoleBinding in the request's namespace grants the call.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from devcluster.protocol import IssuedToken

RBAC_GROUP = "rbac.authorization.k8s.io"


class Attributes(NamedTuple):
    """What an RBAC rule is matched against (kube-apiserver's authorizer.Attributes)."""

    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    namespace: str | None
    name: str | None


def user_of(token: IssuedToken) -> str:
    return f"system:serviceaccount:{token.namespace}:{token.service_account}"


def unauthenticated_reason(
    token: IssuedToken, now: datetime.datetime, bound: Mapping[str, Any] | None
) -> str | None:
    """Why the token no longer authenticates (None: it does).

    ``bound`` is the stored object the token is bound to (None when it is gone); it is
    ignored for a token bound to nothing.
    """
    if now >= token.expires:
        return "the token has expired"
    if token.bound_kind is None:
        return None
    if bound is None:
        return f"the token's bound {token.bound_kind} {token.bound_name!r} no longer exists"
    if token.bound_uid and bound.get("metadata", {}).get("uid") != token.bound_uid:
        return f"the token's bound {token.bound_kind} {token.bound_name!r} was replaced"
    return None


def _covers(values: Iterable[str], wanted: str) -> bool:
    listed = list(values)
    return "*" in listed or wanted in listed


def rule_allows(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    """One PolicyRule: apiGroups, resources (``plural/sub``, ``*``, ``*/sub``), verbs, names."""
    if not _covers(rule.get("verbs") or (), attributes.verb):
        return False
    if not _covers(rule.get("apiGroups") or (), attributes.group):
        return False
    resources = list(rule.get("resources") or ())
    sub = attributes.resource.partition("/")[2]
    if not (_covers(resources, attributes.resource) or (sub and f"*/{sub}" in resources)):
        return False
    names = list(rule.get("resourceNames") or ())
    return not names or (attributes.name is not None and attributes.name in names)


def binds(binding: Mapping[str, Any], token: IssuedToken) -> bool:
    """Whether the (Role|ClusterRole)Binding names the token's ServiceAccount as a subject."""
    namespace = binding.get("metadata", {}).get("namespace")
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{token.namespace}")
    for subject in binding.get("subjects") or ():
        kind, name = subject.get("kind"), subject.get("name")
        service_account = (
            kind == "ServiceAccount"
            and name == token.service_account
            and (subject.get("namespace") or namespace) == token.namespace
        )
        if service_account or (kind, name) == ("User", user_of(token)):
            return True
        if kind == "Group" and (name in groups or name == "system:authenticated"):
            return True
    return False


def allowed(
    attributes: Attributes,
    token: IssuedToken,
    bindings: Iterable[Mapping[str, Any]],
    roles: Mapping[tuple[str, str], Mapping[str, Any]],
) -> bool:
    """Whether any of the namespace's ``bindings`` grants the call to the token's user.

    ``roles`` maps ``(kind, name)`` (``Role`` of the namespace or ``ClusterRole``) to the
    stored role; a binding whose role does not exist grants nothing, as in Kubernetes.
    """
    for binding in bindings:
        if not binds(binding, token):
            continue
        ref = binding.get("roleRef") or {}
        role = roles.get((ref.get("kind", ""), ref.get("name", "")))
        if role and any(rule_allows(rule, attributes) for rule in role.get("rules") or ()):
            return True
    return False


def forbidden_message(attributes: Attributes, user: str) -> str:
    """kube-apiserver's wording, so a denied client logs what it would log on a cluster."""
    plural = attributes.resource.partition("/")[0]
    qualified = f"{plural}.{attributes.group}" if attributes.group else plural
    what = f'{qualified} "{attributes.name}"' if attributes.name else qualified
    where = (
        f' in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else " at the cluster scope"
    )
    return (
        f'{what} is forbidden: User "{user}" cannot {attributes.verb} resource '
        f'"{attributes.resource}" in API group "{attributes.group}"{where}'
    )


#: The audiences a token without explicit ones is minted for: the API server's own (what
#: kube-apiserver's ``--api-audiences`` defaults to, the issuer URL).
API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)


def token_audiences(token: IssuedToken) -> tuple[str, ...]:
    return token.audiences or API_AUDIENCES


def accepted_by_api(token: IssuedToken) -> bool:
    """Whether the API server takes the token as a credential: only for its own audience.

    A projected token minted for another audience (the operator's report API) is refused
    with 401, which is what keeps a pod's report token from being an API credential.
    """
    return bool(set(token_audiences(token)) & set(API_AUDIENCES))


def review_status(
    token: IssuedToken | None,
    audiences: Iterable[str],
    now: datetime.datetime,
    bound: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A TokenReview's ``status`` as kube-apiserver writes it.

    Authenticated only when the token is known, unexpired, its bound object still exists
    with the same uid, and it was minted for one of ``audiences`` (the API server's own
    when none are asked for). A pod-bound token carries the pod's name and uid in
    ``user.extra``, under the keys kube-apiserver uses.
    """
    wanted = tuple(audiences) or API_AUDIENCES
    if token is None:
        return {"authenticated": False, "error": "invalid bearer token"}
    problem = unauthenticated_reason(token, now, bound)
    if problem is not None:
        return {"authenticated": False, "error": problem}
    matched = [a for a in wanted if a in token_audiences(token)]
    if not matched:
        return {
            "authenticated": False,
            "error": "token audiences "
            f"{list(token_audiences(token))} is invalid for the target audiences {list(wanted)}",
        }
    extra: dict[str, list[str]] = {}
    if token.bound_kind == "Pod":
        extra["authentication.kubernetes.io/pod-name"] = [token.bound_name or ""]
        extra["authentication.kubernetes.io/pod-uid"] = [token.bound_uid or ""]
    return {
        "authenticated": True,
        "user": {
            "username": user_of(token),
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{token.namespace}",
                "system:authenticated",
            ],
            "extra": extra,
        },
        "audiences": matched,
    }
