"""The operator's RBAC: one set of rules, granted cluster-wide or per listed namespace.

Which (verb, resource) pairs the operator really sends is checked against these rules by
the end-to-end suite; here the shape is checked: no wildcards, no Secrets, ServiceAccounts,
tokens or RBAC objects,
the namespaced Roles identical to the cluster-wide grant, bound to the Deployment's account.
"""

from __future__ import annotations

from tests.chart.manifests import OPTIONS, RELEASE_NAMESPACE, Render, of_kind, one
from tests.chart.manifests import rbac_grants as grants

CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "tokenreviews"}
#: What the operator must never hold (docs/security.md, "a compromised operator"): no
#: Secrets, no identities to mint tokens for, no RBAC objects to grant rights with.
NEVER = {"secrets", "serviceaccounts", "serviceaccounts/token", "roles", "rolebindings"}


def test_cluster_wide_grants_everything_in_one_cluster_role(render: Render) -> None:
    manifests = render()
    assert of_kind(manifests, "Role") == []
    assert of_kind(manifests, "RoleBinding") == []
    granted = grants(one(manifests, "ClusterRole")["rules"])
    assert ("incluster.dev", "experiments", "watch") in granted
    assert ("authentication.k8s.io", "tokenreviews", "create") in granted
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "watch") in granted
    # kopf lists namespaces only to resolve a namespace list, never when cluster-wide.
    assert {r for _, r, _ in granted} & CLUSTER_SCOPED == {
        "customresourcedefinitions",
        "tokenreviews",
    }


def test_namespaced_mode_grants_a_role_per_listed_namespace(render: Render) -> None:
    cluster_wide = grants(one(render(), "ClusterRole")["rules"])
    manifests = render(OPTIONS["namespaced"])
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    namespaced = {r for r in cluster_wide if r[1] not in CLUSTER_SCOPED}
    for role in roles:
        assert grants(role["rules"]) == namespaced, "Roles and ClusterRole must not drift"
    cluster_role = grants(one(manifests, "ClusterRole")["rules"])
    assert cluster_role == {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
    }


def test_no_wildcards_no_secrets_no_identities_no_rbac(render: Render) -> None:
    for values in (OPTIONS["defaults"], OPTIONS["namespaced"]):
        manifests = render(values)
        for role in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role"):
            granted = grants(role["rules"])
            assert not any("*" in part for grant in granted for part in grant)
            assert {resource for _, resource, _ in granted} & NEVER == set()
            # Pods, Services and ConfigMaps are created and deleted, never changed.
            assert not {
                (r, v) for _, r, v in granted if r in ("pods", "services", "configmaps")
            } & {(r, v) for r in ("pods", "services", "configmaps") for v in ("patch", "update")}
            assert all(rule.get("resourceNames") is None for rule in role["rules"])
            assert not {verb for *_, verb in granted} & {"escalate", "bind", "impersonate"}


def test_bindings_name_the_deployments_service_account(render: Render) -> None:
    for values in (OPTIONS["defaults"], OPTIONS["namespaced"], OPTIONS["scheduling"]):
        manifests = render(values)
        account = one(manifests, "ServiceAccount")
        assert account["metadata"]["namespace"] == RELEASE_NAMESPACE
        pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        bindings = of_kind(manifests, "ClusterRoleBinding") + of_kind(manifests, "RoleBinding")
        roles = {
            (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"])
            for r in (of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role"))
        }
        for binding in bindings:
            assert binding["subjects"] == [
                {
                    "kind": "ServiceAccount",
                    "name": account["metadata"]["name"],
                    "namespace": RELEASE_NAMESPACE,
                }
            ]
            ref = binding["roleRef"]
            assert (ref["kind"], binding["metadata"].get("namespace"), ref["name"]) in roles
