"""The SDK's scoped API client against the emulator, with fault injection."""

from __future__ import annotations

import logging
import socket

import pytest
from incluster import Experiment, contract, tracking
from incluster.client import (
    ApiError,
    AuthError,
    Client,
    TokenFileError,
    UnreachableError,
)
from incluster.errors import ContextError

from tests.tokens.conftest import create_experiment, fail, status_patches, write_token

pytestmark = pytest.mark.cluster


def bearer_of_last_request(cluster) -> str:
    def last():
        return [r for r in cluster.emulator._requests if r.name == "xp"][-1].headers

    headers = cluster.call(last)
    return headers["Authorization"].removeprefix("Bearer ")


def test_reads_and_patches_its_own_experiment(pod_context, experiment):
    client = Client()
    assert (client.name, client.namespace) == ("xp", experiment.namespace)
    assert client.get_experiment()["metadata"]["name"] == "xp"
    client.patch_status({"tracking": {"metrics": {"loss": {"value": 0.5, "step": 1}}}})
    client.patch_status({"tracking": {"metrics": {"acc": {"value": 0.9, "step": 1}}}})
    assert experiment.tracking()["metrics"] == {
        "loss": {"value": 0.5, "step": 1},
        "acc": {"value": 0.9, "step": 1},
    }


def test_reads_a_referenced_experiment(pod_context, experiment):
    ref = Client().get_reference("prev")
    assert ref.name == "prev"
    assert ref.outputs_path == "/outputs/ns/prev"
    assert ref.status["phase"] == "Succeeded"


def test_sdk_entry_points_build_the_same_client(pod_context, experiment):
    assert Experiment().client.get_experiment()["metadata"]["name"] == "xp"
    assert tracking.get_client().get_experiment()["metadata"]["name"] == "xp"


def test_a_replaced_token_file_is_used_from_the_next_call(pod_context, experiment, cluster):
    client = Client()
    client.get_experiment()
    assert bearer_of_last_request(cluster) == experiment.secret_token()
    write_token(pod_context, "rotated-token")
    client.get_experiment()
    assert bearer_of_last_request(cluster) == "rotated-token"


def test_missing_or_empty_token_file_is_a_clear_client_error(pod_context, experiment, cluster):
    token_file = pod_context / contract.DIR_TOKEN / contract.FILE_TOKEN
    served = cluster.call(lambda: cluster.emulator.requests_served)
    token_file.unlink()
    with pytest.raises(TokenFileError, match=str(token_file)):
        Client().get_experiment()
    token_file.write_text("")
    with pytest.raises(TokenFileError, match="empty"):
        Client().get_experiment()
    token_file.unlink()
    token_file.mkdir()  # unreadable as a file, whatever user the test runs as
    with pytest.raises(TokenFileError, match="unreadable"):
        Client().get_experiment()
    assert cluster.call(lambda: cluster.emulator.requests_served) == served, "nothing was sent"


def test_5xx_and_429_are_retried(pod_context, experiment, cluster):
    fail(cluster, 503, status_patches(count=2))
    fail(cluster, 429, status_patches(count=1))
    Client(backoff=0.01).patch_status({"tracking": {"outputs": {"best": 1}}})
    assert experiment.tracking()["outputs"] == {"best": 1}


def test_persistent_5xx_gives_up_with_the_status(pod_context, experiment, cluster):
    fail(cluster, 500, status_patches())
    with pytest.raises(ApiError) as failed:
        Client(retries=2, backoff=0.01).patch_status({"tracking": {}})
    assert failed.value.status == 500
    assert "3 tries" in str(failed.value)


def test_403_is_not_retried_and_reported_once(pod_context, experiment, cluster, caplog):
    emu = cluster.emulator
    fail(cluster, 403, status_patches())
    client = Client(backoff=0.01)
    served = cluster.call(lambda: emu.requests_served)
    with caplog.at_level(logging.WARNING, logger="incluster.client"):
        for _ in range(3):
            with pytest.raises(AuthError) as denied:
                client.patch_status({"tracking": {}})
            assert denied.value.status == 403
    assert cluster.call(lambda: emu.requests_served) == served + 3, "403 is never retried"
    warnings = [r for r in caplog.records if r.name == "incluster.client"]
    assert len(warnings) == 1
    assert "revoked" in warnings[0].getMessage()


def test_the_minted_token_reaches_nothing_outside_its_role(pod_context, experiment, cluster):
    """Enforced by the emulator's RBAC for minted tokens, not by an injected answer."""
    create_experiment(experiment.api, cluster.namespace, "other", [])
    client = Client(backoff=0.01)
    client.get_reference("prev")  # referenced: readable
    with pytest.raises(AuthError) as other:
        client.get_reference("other")
    assert other.value.status == 403
    assert 'experiments.incluster.dev "other" is forbidden' in str(other.value)
    assert f'"system:serviceaccount:{cluster.namespace}:' in str(other.value)
    with pytest.raises(AuthError) as pods:
        client.request("GET", f"/api/v1/namespaces/{cluster.namespace}/pods")
    assert pods.value.status == 403
    assert 'cannot list resource "pods"' in str(pods.value)
    with pytest.raises(AuthError) as prev_status:
        client.request(
            "PATCH",
            f"{client._path('prev')}/status",
            {"status": {"phase": "Failed"}},
            content_type="application/merge-patch+json",
        )
    assert prev_status.value.status == 403
    assert experiment.get("prev")["status"]["phase"] == "Succeeded"


def test_after_revocation_the_client_reports_the_token_rejected(
    pod_context, experiment, cluster, caplog
):
    from incluster_operator import tokens

    client = Client(backoff=0.01)
    client.patch_status({"tracking": {"tags": ["before"]}})
    assert tokens.revoke(experiment.api, cluster.namespace, "xp") == ["Secret", "RoleBinding"]
    served = cluster.call(lambda: cluster.emulator.requests_served)
    with caplog.at_level(logging.WARNING, logger="incluster.client"):
        for call in (client.get_experiment, lambda: client.patch_status({"tracking": {}})):
            with pytest.raises(AuthError) as rejected:
                call()
            assert rejected.value.status == 401
            assert "Unauthorized" in str(rejected.value)
    assert cluster.call(lambda: cluster.emulator.requests_served) == served + 2, "not retried"
    warnings = [r.getMessage() for r in caplog.records if r.name == "incluster.client"]
    assert len(warnings) == 1
    assert "rejected the token (401)" in warnings[0]
    assert experiment.tracking()["tags"] == ["before"], "nothing written after revocation"


def test_unreachable_api_is_reported_after_retries(pod_context, experiment, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(contract.ENV_API_URL, f"http://127.0.0.1:{port}")
    with pytest.raises(UnreachableError, match="did not answer after 2 tries"):
        Client(retries=1, backoff=0.01).get_experiment()


def test_bad_experiment_info_is_a_context_error(pod_context, monkeypatch):
    monkeypatch.setenv(
        contract.ENV_EXPERIMENT_INFO,
        '{"experiment_name": "../secrets", "namespace": "default"}',
    )
    with pytest.raises(ContextError, match="experiment name"):
        Client()


def test_no_context_means_no_client(monkeypatch, tmp_path):
    monkeypatch.delenv(contract.ENV_CONTEXT_DIR, raising=False)
    with pytest.raises(ContextError, match="no in-cluster context"):
        Client(name="xp", namespace="default")


def test_every_call_stays_within_the_rendered_role(pod_context, experiment, cluster):
    from incluster_operator.render import access

    rules = access.role_rules("xp", ["prev"])
    cluster.call(cluster.emulator.access_log.clear)
    client = Client()
    client.get_experiment()
    client.patch_status({"tracking": {"tags": ["a"]}})
    client.get_reference("prev")
    seen = cluster.call(lambda: list(cluster.emulator.access_log))
    assert seen
    for call in seen:
        assert any(
            call.group in rule["apiGroups"]
            and call.resource in rule["resources"]
            and call.name in rule["resourceNames"]
            and call.verb in rule["verbs"]
            for rule in rules
        ), f"{call} is not allowed by the experiment's Role"


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("http://api.example.com:6443", "clear text"),
        ("ftp://127.0.0.1", "must look like"),
        ("127.0.0.1:6443", "must look like"),
    ],
)
def test_the_token_never_travels_in_clear_text(pod_context, monkeypatch, url, fault):
    monkeypatch.setenv(contract.ENV_API_URL, url)
    with pytest.raises(ContextError, match=fault):
        Client()


def test_in_cluster_address_comes_from_the_standard_env(pod_context, monkeypatch):
    monkeypatch.delenv(contract.ENV_API_URL)
    monkeypatch.setenv(contract.ENV_KUBERNETES_SERVICE_HOST, "fd00::1")
    monkeypatch.setenv(contract.ENV_KUBERNETES_SERVICE_PORT, "6443")
    client = Client()
    assert client.base_url == "https://[fd00::1]:6443"
    assert client.ca_path == pod_context / contract.DIR_TOKEN / contract.FILE_CA
    monkeypatch.delenv(contract.ENV_KUBERNETES_SERVICE_HOST)
    with pytest.raises(ContextError, match=contract.ENV_KUBERNETES_SERVICE_HOST):
        Client()


def test_https_without_the_projected_ca_is_a_clear_error(pod_context, monkeypatch):
    monkeypatch.delenv(contract.ENV_API_URL)
    monkeypatch.setenv(contract.ENV_KUBERNETES_SERVICE_HOST, "127.0.0.1")
    (pod_context / contract.DIR_TOKEN / contract.FILE_CA).unlink()
    with pytest.raises(TokenFileError, match=r"kube-root-ca\.crt"):
        Client().get_experiment()
