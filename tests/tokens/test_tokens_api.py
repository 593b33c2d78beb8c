"""Minting, refreshing and revoking the experiment token against the API (emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from incluster_operator import tokens
from incluster_operator.render import access
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.tokens.conftest import TTL, create_experiment

pytestmark = pytest.mark.cluster


def test_mint_stores_a_token_bound_to_the_experiment_secret(cluster, api, experiment):
    names = access.access_names("xp")
    token = experiment.secret_token()
    issued = cluster.call(lambda: cluster.emulator.tokens[token])
    assert issued.namespace == cluster.namespace
    assert issued.service_account == names.service_account
    assert (issued.bound_kind, issued.bound_name) == ("Secret", names.secret)
    state = tokens.read_state(api, cluster.namespace, "xp")
    assert state is not None
    assert state.expires_at - state.issued_at == timedelta(seconds=TTL)
    assert abs(state.expires_at - issued.expires) < timedelta(seconds=1)


def test_refresh_keeps_a_fresh_token_and_replaces_a_due_one(cluster, api, experiment):
    first = experiment.secret_token()
    state = tokens.read_state(api, cluster.namespace, "xp")
    assert state is not None
    kept = tokens.refresh_if_due(api, cluster.namespace, "xp", TTL)
    assert kept == state
    assert experiment.secret_token() == first

    due = tokens.refresh_at(state)
    assert due is not None
    assert due < state.expires_at, "the refresh must happen before expiry"
    renewed = tokens.refresh_if_due(api, cluster.namespace, "xp", TTL, now=due)
    assert renewed is not None
    second = experiment.secret_token()
    assert second != first
    assert cluster.call(lambda: cluster.emulator.tokens[second]).bound_kind == "Secret"
    assert renewed.expires_at >= state.expires_at
    assert renewed.expires_at - renewed.issued_at == timedelta(seconds=TTL)
    assert tokens.read_state(api, cluster.namespace, "xp") == renewed


def test_a_secret_without_token_is_minted_on_first_refresh(cluster, api, experiment):
    create_experiment(api, cluster.namespace, "fresh", [])
    assert tokens.read_state(api, cluster.namespace, "fresh") is None
    state = tokens.refresh_if_due(api, cluster.namespace, "fresh", TTL)
    assert state is not None
    assert state.expires_at > datetime.now(UTC)
    assert tokens.read_state(api, cluster.namespace, "fresh") is not None


def test_revoke_deletes_secret_and_role_binding_only(cluster, api, experiment):
    names = access.access_names("xp")
    assert tokens.revoke(api, cluster.namespace, "xp") == ["Secret", "RoleBinding"]
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret(names.secret, cluster.namespace)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as gone:
        rbac.read_namespaced_role_binding(names.role_binding, cluster.namespace)
    assert gone.value.status == 404
    # The ServiceAccount and the Role go with the Experiment (owner references).
    core.read_namespaced_service_account(names.service_account, cluster.namespace)
    rbac.read_namespaced_role(names.role, cluster.namespace)
    assert tokens.revoke(api, cluster.namespace, "xp") == [], "revoking twice is a no-op"
    assert tokens.read_state(api, cluster.namespace, "xp") is None
    far = datetime.now(UTC) + timedelta(days=1)
    assert tokens.refresh_if_due(api, cluster.namespace, "xp", TTL, now=far) is None
    issued = cluster.call(lambda: len(cluster.emulator.tokens))
    assert issued == 1, "a refresh after revocation must not mint a token"


def test_minting_without_the_secret_fails_loudly(cluster, api, experiment):
    tokens.revoke(api, cluster.namespace, "xp")
    with pytest.raises(ApiException) as missing:
        tokens.mint(api, cluster.namespace, "xp", TTL)
    assert missing.value.status == 404


def test_stored_role_has_exactly_the_rendered_rules(cluster, api, experiment):
    role = client.RbacAuthorizationV1Api(api).read_namespaced_role(
        access.access_names("xp").role, cluster.namespace
    )
    stored = [api.sanitize_for_serialization(rule) for rule in role.rules]
    assert stored == [
        {
            "apiGroups": ["incluster.dev"],
            "resources": ["experiments", "experiments/status"],
            "resourceNames": ["xp"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["incluster.dev"],
            "resources": ["experiments"],
            "resourceNames": ["prev"],
            "verbs": ["get"],
        },
    ]


def test_no_token_in_configmaps(cluster, api, experiment):
    token = experiment.secret_token()
    for cm in client.CoreV1Api(api).list_namespaced_config_map(cluster.namespace).items:
        for value in (cm.data or {}).values():
            assert token not in value
