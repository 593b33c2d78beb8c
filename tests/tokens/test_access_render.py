"""Security properties of the rendered access objects (pure render, no API)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from incluster import contract
from incluster_operator.render import access

USER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "xp-worker-0", "namespace": "team-a"},
    "spec": {
        "serviceAccountName": "gcs-reader",
        "initContainers": [{"name": "fetch", "image": "busybox"}],
        "containers": [
            {
                "name": "train",
                "image": "trainer:1",
                "env": [{"name": "LR", "value": "0.1"}],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            },
            {"name": "sidecar", "image": "logger:1"},
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    },
}


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


def test_token_and_ca_are_files_in_the_context_dir():
    pod = access.with_token_volume(USER_POD, "xp", "/var/run/incluster")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == access.VOLUME_NAME)
    sources = volume["projected"]["sources"]
    assert sources[0]["secret"] == {
        "name": access.access_names("xp").secret,
        "items": [{"key": "token", "path": contract.FILE_TOKEN}],
    }
    assert sources[1]["configMap"] == {
        "name": "kube-root-ca.crt",
        "items": [{"key": "ca.crt", "path": contract.FILE_CA}],
    }
    assert volume["projected"]["defaultMode"] == 0o444
    for kind in ("initContainers", "containers"):
        for container in pod["spec"][kind]:
            mount = next(m for m in container["volumeMounts"] if m["name"] == access.VOLUME_NAME)
            assert mount == {
                "name": access.VOLUME_NAME,
                "mountPath": f"/var/run/incluster/{contract.DIR_TOKEN}",
                "readOnly": True,
            }


def test_token_sources_for_a_shared_projected_context_volume():
    paths = [s[k]["items"][0]["path"] for s in access.token_sources("xp") for k in s]
    assert paths == [
        f"{contract.DIR_TOKEN}/{contract.FILE_TOKEN}",
        f"{contract.DIR_TOKEN}/{contract.FILE_CA}",
    ]


def test_pod_keeps_the_user_service_account_and_gets_no_env():
    original = copy.deepcopy(USER_POD)
    pod = access.with_token_volume(USER_POD, "xp", "/var/run/incluster")
    assert original == USER_POD, "the input must not be mutated"
    assert pod["spec"]["serviceAccountName"] == "gcs-reader"
    assert "automountServiceAccountToken" not in pod["spec"]
    for kind in ("initContainers", "containers"):
        for new, old in zip(pod["spec"][kind], original["spec"][kind], strict=True):
            assert new.get("env") == old.get("env")
            assert "envFrom" not in new


def test_no_token_secret_or_operator_credentials_reach_the_pod():
    pod = access.with_token_volume(USER_POD, "xp", "/var/run/incluster")
    text = json.dumps(pod)
    assert "operator" not in text
    secrets = [
        src["secret"]["name"]
        for v in pod["spec"]["volumes"]
        for src in v.get("projected", {}).get("sources", [])
        if "secret" in src
    ] + [v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v]
    assert secrets == [access.access_names("xp").secret]
    for container in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        for env in container.get("env", []):
            assert "valueFrom" not in env
            assert "token" not in env["name"].lower()


def test_reserved_volume_name_and_mount_path_are_reported():
    clash = copy.deepcopy(USER_POD)
    clash["spec"]["volumes"].append({"name": access.VOLUME_NAME, "emptyDir": {}})
    with pytest.raises(ValueError, match="reserved"):
        access.with_token_volume(clash, "xp", "/var/run/incluster")
    clash = copy.deepcopy(USER_POD)
    clash["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "scratch", "mountPath": "/var/run/incluster/token"}
    )
    with pytest.raises(ValueError, match="'train' already mounts"):
        access.with_token_volume(clash, "xp", "/var/run/incluster")


def test_relative_or_escaping_context_dir_is_rejected():
    with pytest.raises(ValueError, match="absolute"):
        access.token_mount("var/run")
    with pytest.raises(ValueError, match="absolute"):
        access.token_mount("/var/../etc")
