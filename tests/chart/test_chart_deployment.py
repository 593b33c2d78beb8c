"""The operator Deployment: its exact command, probes and pod security."""

from __future__ import annotations

import importlib.util

import pytest
from incluster_operator import settings as s
from kopf import cli as kopf_cli

from tests.chart.manifests import OPTIONS, Render, container_env, one, operator_container

DEFAULT_COMMAND = [
    "kopf",
    "run",
    "--standalone",
    "--all-namespaces",
    "-m",
    "incluster_operator.handlers",
    "--liveness=http://0.0.0.0:8080/healthz",
]


def test_default_command_runs_kopf_standalone_on_all_namespaces(render: Render) -> None:
    assert operator_container(render())["command"] == DEFAULT_COMMAND


def test_namespace_list_becomes_kopf_namespace_flags(render: Render) -> None:
    command = operator_container(render(OPTIONS["namespaced"]))["command"]
    assert "--all-namespaces" not in command
    assert [a for a in command if a.startswith("--namespace=")] == [
        "--namespace=team-b",
        "--namespace=team-a",
    ]


def test_log_level_maps_to_kopf_flags(render: Render) -> None:
    flags = {"--verbose", "--quiet", "--debug"}
    assert set(operator_container(render())["command"]) & flags == set()
    assert set(operator_container(render(OPTIONS["log-debug"]))["command"]) & flags == {"--verbose"}
    assert set(operator_container(render(OPTIONS["log-warning"]))["command"]) & flags == {"--quiet"}


def test_probes_hit_the_port_kopf_serves_health_on(render: Render) -> None:
    for values, port in ((OPTIONS["defaults"], 8080), (OPTIONS["scheduling"], 9090)):
        container = operator_container(render(values))
        assert f"--liveness=http://0.0.0.0:{port}/healthz" in container["command"]
        assert container["ports"] == [
            {"name": "health", "containerPort": port, "protocol": "TCP"},
            {"name": "report", "containerPort": 8443, "protocol": "TCP"},
        ]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_pod_security_is_restricted_by_default(render: Render) -> None:
    manifests = render()
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    container = operator_container(manifests)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs one writable place, and only that one.
    assert container["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "report-tls", "mountPath": "/var/run/incluster-operator/tls", "readOnly": True},
    ]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {
            "name": "report-tls",
            "secret": {"secretName": "xp-incluster-report-tls", "defaultMode": 288},
        },
    ]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_arbitrary_uid_platforms_can_drop_the_fixed_uid(render: Render) -> None:
    """OpenShift assigns UIDs itself: null removes runAsUser, runAsNonRoot stays."""
    pod = one(render(OPTIONS["openshift-uids"]), "Deployment")["spec"]["template"]["spec"]
    assert "runAsUser" not in pod["securityContext"]
    assert "runAsGroup" not in pod["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_image_tag_defaults_to_the_app_version_and_a_digest_wins(render: Render) -> None:
    assert operator_container(render())["image"] == "incluster/operator:0.1.0"
    assert operator_container(render({"image": {"tag": "dev"}}))["image"] == (
        "incluster/operator:dev"
    )
    manifests = render(OPTIONS["image-digest"])
    assert operator_container(manifests)["image"] == (
        "registry.example/ml/incluster@sha256:" + "a" * 64
    )
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_scheduling_values_reach_the_pod(render: Render) -> None:
    manifests = render(OPTIONS["scheduling"])
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 0
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "ml"
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    annotations = dict(pod["metadata"]["annotations"])
    assert len(annotations.pop("incluster.dev/report-tls")) == 16  # restarts on a new cert
    assert annotations == {"example.com/scrape": "false"}
    assert pod["metadata"]["labels"]["team"] == "ml"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert operator_container(manifests)["resources"]["limits"] == {"memory": "1Gi"}
    account = one(manifests, "ServiceAccount")
    assert account["metadata"]["name"] == "ml-operator"
    assert account["metadata"]["annotations"] == {"iam.example/role": "r"}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_kopf_accepts_the_command_and_watches_what_the_settings_say(
    render: Render, option: str
) -> None:
    """kopf's own CLI parses the command; its namespaces agree with the operator's settings."""
    manifests = render(OPTIONS[option])
    command = operator_container(manifests)["command"]
    assert command[:2] == ["kopf", "run"]
    params = kopf_cli.main.commands["run"].make_context("run", command[2:]).params
    assert params["standalone"] is True
    assert params["paths"] == ()
    for module in params["modules"]:
        assert importlib.util.find_spec(module) is not None, f"-m {module}: no such module"
    settings = s.from_env(container_env(manifests))
    if settings.namespaces is None:
        assert params["clusterwide"] is True
        assert params["namespaces"] == ()
    else:
        assert params["clusterwide"] is False
        assert sorted(params["namespaces"]) == list(settings.namespaces)
