"""Security properties of the rendered access objects (pure render, no API)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from incluster import contract
from incluster_operator.api import names, validate
from incluster_operator.render import ExperimentMeta, access, render_all
from incluster_operator.settings import Settings, VolumeSource

META = ExperimentMeta(name="xp", namespace="team-a", uid="6c1d9a58-3b9e-4a53-9b7e-0d7f1c2b3a4d")
SETTINGS = Settings(outputs=VolumeSource(claim="outputs"))


def template(service_account: str | None = None) -> dict:
    spec: dict = {
        "initContainers": [{"name": "fetch", "image": "busybox"}],
        "containers": [
            {"name": "main", "image": "trainer:1", "env": [{"name": "LR", "value": "0.1"}]},
            {"name": "sidecar", "image": "logger:1"},
        ],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"spec": spec}


def rendered(service_account: str | None = "gcs-reader"):
    raw = {
        "project": "mnist",
        "framework": "pytorch",
        "replicas": {
            "master": {"template": template(service_account)},
            "worker": {"replicas": 2, "template": template(service_account)},
        },
        "outputsRefs": {"experiments": ["prev"]},
    }
    children = render_all(validate(raw, META.name, SETTINGS), META, SETTINGS)
    pods = [access.with_token_sources(pod, META.name) for pod in children.pods]
    return children, pods


def containers(pod):
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def test_role_allows_only_get_and_patch_on_this_experiment():
    role = access.role("xp", "team-a")
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == "team-a"
    assert role["rules"] == [
        {
            "apiGroups": ["incluster.dev"],
            "resources": ["experiments", "experiments/status"],
            "resourceNames": ["xp"],
            "verbs": ["get", "patch"],
        }
    ]


def test_role_adds_read_only_access_to_referenced_experiments():
    rules = access.role_rules("xp", ["prev-2", "prev-1", "prev-2", "xp"])
    assert rules == [
        {
            "apiGroups": ["incluster.dev"],
            "resources": ["experiments", "experiments/status"],
            "resourceNames": ["xp"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["incluster.dev"],
            "resources": ["experiments"],
            "resourceNames": ["prev-1", "prev-2"],
            "verbs": ["get"],
        },
    ]


def test_no_rule_is_unnamed_or_wildcard():
    for rule in access.role_rules("xp", ["a", "b"]):
        assert rule["resourceNames"], "a rule without resourceNames covers every object"
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert set(rule["verbs"]) <= {"get", "patch"}
        assert rule["apiGroups"] == [contract.API_GROUP]


@pytest.mark.parametrize("bad", ["../etc", "UPPER", "a/b", "", "x" * 254])
def test_bad_reference_names_are_rejected_with_the_field(bad):
    with pytest.raises(ValueError, match=r"spec\.outputsRefs"):
        access.role_rules("xp", [bad])


@pytest.mark.parametrize("bad", ["Xp", "xp/../other", "-xp", "x" * 64])
def test_bad_experiment_names_are_rejected(bad):
    with pytest.raises(ValueError, match="experiment name"):
        access.access_names(bad)


def test_role_binding_binds_only_the_experiment_service_account():
    binding = access.role_binding("xp", "team-a")
    names = access.access_names("xp")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": names.role,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": names.service_account, "namespace": "team-a"}
    ]


def test_service_account_never_automounts_its_own_token():
    sa = access.service_account("xp", "team-a", {"incluster.dev/experiment": "xp"})
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["labels"] == {"incluster.dev/experiment": "xp"}


def test_secret_is_created_without_a_token():
    secret = access.token_secret("xp", "team-a")
    assert secret["type"] == "Opaque"
    assert "data" not in secret
    assert "stringData" not in secret


def test_secret_patch_stores_the_token_and_its_lifetime():
    issued = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    patch = access.token_secret_patch("abc.def", issued, issued + timedelta(hours=1))
    assert base64.b64decode(patch["data"][access.SECRET_KEY_TOKEN]) == b"abc.def"
    assert patch["metadata"]["annotations"] == {
        access.ANNOTATION_ISSUED_AT: "2026-01-02T03:04:05Z",
        access.ANNOTATION_EXPIRES_AT: "2026-01-02T04:04:05Z",
    }


def test_secret_patch_refuses_an_empty_token_or_naive_times():
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="empty token"):
        access.token_secret_patch("", now, now)
    with pytest.raises(ValueError, match="timezone"):
        access.token_secret_patch("t", now.replace(tzinfo=None), now)


def test_token_and_ca_are_files_in_the_mounted_context_volume():
    _, pods = rendered()
    for pod in pods:
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == names.VOLUME_CONTEXT]
        sources = volume["projected"]["sources"]
        assert sources[-2:] == [
            {
                "secret": {
                    "name": access.access_names("xp").secret,
                    "items": [{"key": "token", "path": "token/token"}],
                }
            },
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "token/ca.crt"}],
                }
            },
        ]
        for container in containers(pod):
            mounts = [m for m in container["volumeMounts"] if m["name"] == names.VOLUME_CONTEXT]
            assert mounts == [
                {
                    "name": names.VOLUME_CONTEXT,
                    "mountPath": SETTINGS.context_dir,
                    "readOnly": True,
                }
            ]


def test_token_paths_are_the_contract_names():
    paths = [s[k]["items"][0]["path"] for s in access.token_sources("xp") for k in s]
    assert paths == [
        f"{contract.DIR_TOKEN}/{contract.FILE_TOKEN}",
        f"{contract.DIR_TOKEN}/{contract.FILE_CA}",
    ]


@pytest.mark.parametrize("service_account", ["gcs-reader", None])
def test_pod_keeps_the_user_service_account(service_account):
    children, pods = rendered(service_account)
    for before, after in zip(children.pods, pods, strict=True):
        assert after["spec"].get("serviceAccountName") == service_account
        assert "automountServiceAccountToken" not in after["spec"]
        assert [c.get("env") for c in containers(after)] == [
            c.get("env") for c in containers(before)
        ]


def test_no_secret_in_env_and_only_the_token_secret_in_volumes():
    children, pods = rendered()
    secret = access.access_names("xp").secret
    for pod in pods:
        referenced = [
            src["secret"]["name"]
            for v in pod["spec"]["volumes"]
            for src in v.get("projected", {}).get("sources", [])
            if "secret" in src
        ] + [v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v]
        assert referenced == [secret]
        for container in containers(pod):
            assert "envFrom" not in container
            for env in container.get("env", []):
                assert "valueFrom" not in env or "secretKeyRef" not in env["valueFrom"]
                assert "token" not in env["name"].lower()
                assert secret not in env.get("value", "")
    assert secret not in json.dumps(children.config_map)


def test_pods_never_reference_the_operator_identity():
    _, pods = rendered(service_account=None)
    assert "incluster-operator" not in json.dumps(pods)
    for pod in pods:
        # Not the experiment's ServiceAccount either: its token is minted, never automounted.
        assert "serviceAccountName" not in pod["spec"]
        assert "serviceAccount" not in pod["spec"]


def test_a_pod_without_a_projected_context_volume_is_refused():
    _, pods = rendered()
    pod = copy.deepcopy(pods[0])
    pod["spec"]["volumes"] = [
        v for v in pod["spec"]["volumes"] if v["name"] != names.VOLUME_CONTEXT
    ]
    with pytest.raises(ValueError, match="projected"):
        access.with_token_sources(pod, "xp")


def test_sources_that_could_shadow_the_token_are_refused():
    children, pods = rendered()
    with pytest.raises(ValueError, match="'token/token'"):
        access.with_token_sources(pods[0], "xp")  # already carries them
    pod = copy.deepcopy(children.pods[0])
    for v in pod["spec"]["volumes"]:
        if v["name"] == names.VOLUME_CONTEXT:
            v["projected"]["sources"].append(
                {"configMap": {"name": "user", "items": [{"key": "k", "path": "token"}]}}
            )
    with pytest.raises(ValueError, match="'token'"):
        access.with_token_sources(pod, "xp")


def test_access_objects_come_in_creation_order():
    kinds = [o["kind"] for o in access.access_objects("xp", "team-a", ["prev"], {"a": "b"})]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Secret"]


def test_pods_carry_the_summary_interval_and_the_primary_metric():
    from incluster.tracking import sync
    from incluster_operator.api import crd

    settings = Settings(outputs=VolumeSource(claim="outputs"), summary_sync_seconds=2.5)
    raw = {
        "project": "mnist",
        "primaryMetric": "loss",
        "replicas": {"master": {"template": template()}},
    }
    children = render_all(validate(raw, META.name, settings), META, settings)
    for container in containers(children.pods[0]):
        env = {e["name"]: e.get("value", "") for e in container["env"]}
        assert sync.interval_from_env(env) == 2.5
    document = json.loads(children.config_map["data"][contract.FILE_CONTEXT])
    assert document[contract.KEY_PRIMARY_METRIC] == "loss"
    (version,) = crd.definition()["spec"]["versions"]
    assert {
        "name": "Metric",
        "type": "string",
        "description": "spec.primaryMetric's latest value and step",
        "jsonPath": f".status.{contract.STATUS_TRACKING}.{contract.STATUS_TRACKING_PRIMARY}",
    } in version["additionalPrinterColumns"]
