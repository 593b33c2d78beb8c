"""The Deployment's env is read back by the operator's own settings code.

The chart spells the INCLUSTER_OPERATOR_* names in its template; these tests take the names
only from incluster_operator.settings, so a variable renamed on either side fails here.
"""

from __future__ import annotations

import json

import pytest
from incluster_operator import settings as s

from tests.chart.manifests import OPTIONS, Render, container_env, operator_invocation

#: Env the chart sets for the runtime rather than for the operator's settings.
RUNTIME_ENV = {"HOME", "PYTHONDONTWRITEBYTECODE"}


def settings_for(render: Render, values: dict[str, object]) -> s.Settings:
    return s.from_env(container_env(render(values)))


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_option_renders_env_the_operator_accepts(render: Render, option: str) -> None:
    env = container_env(render(OPTIONS[option]))
    assert set(env) - RUNTIME_ENV <= set(s.ENV_VARS), "the chart sets a name settings ignores"
    s.from_env(env)  # raises SettingsError naming the variable on any malformed value


def test_the_chart_can_set_every_setting(render: Render) -> None:
    rendered: set[str] = set()
    for values in OPTIONS.values():
        rendered |= set(container_env(render(values)))
    assert set(s.ENV_VARS) - rendered == set(), "a setting the chart cannot set"


def test_defaults_watch_everything_and_write_to_the_outputs_claim(render: Render) -> None:
    got = settings_for(render, {})
    assert got.namespaces is None
    assert got.outputs == s.VolumeSource(claim="incluster-outputs")
    assert got.outputs_root == "/outputs"
    assert got.data_stores == {}
    assert got.report_audience == "incluster.dev"
    assert got.report_token_seconds == 600
    assert got.report_url == "https://xp-incluster-report.incluster-system.svc:8443"
    assert got.report_tls_dir == "/var/run/incluster-operator/tls"
    assert got.summary_sync_seconds == 10.0
    assert got.inline_env_max_bytes == 4096
    assert got.cluster_domain == "cluster.local"
    assert got.addressing == "dns"


def test_operator_invocation_runs_with_the_rendered_settings(render: Render) -> None:
    argv, env = operator_invocation(render(OPTIONS["tuning"]))
    assert argv[:2] == ["kopf", "run"]
    assert s.from_env(env).report_token_seconds == 900


def test_namespace_list(render: Render) -> None:
    got = settings_for(render, OPTIONS["namespaced"])
    assert got.namespaces == ("team-a", "team-b")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("outputs-hostpath", s.VolumeSource(host_path="/srv/out")),
        ("outputs-emptydir", s.VolumeSource()),
    ],
)
def test_outputs_store(render: Render, option: str, expected: s.VolumeSource) -> None:
    assert settings_for(render, OPTIONS[option]).outputs == expected


def test_outputs_in_an_object_store(render: Render) -> None:
    got = settings_for(render, OPTIONS["outputs-object-store"])
    assert (got.outputs_url, got.upload_seconds) == ("s3://ml-bucket/team", 5.0)
    assert got.outputs == s.VolumeSource()  # pods stage their outputs in an emptyDir
    assert settings_for(render, {}).outputs_url is None


def test_data_stores_and_mount_roots(render: Render) -> None:
    got = settings_for(render, OPTIONS["data-stores"])
    assert got.data_stores == {
        "imagenet": s.VolumeSource(claim="imagenet-pvc"),
        "raw": s.VolumeSource(host_path="/mnt/raw"),
    }
    assert (got.data_root, got.refs_root, got.context_dir) == (
        "/datasets",
        "/references",
        "/run/ctx",
    )


def test_tuning_values_reach_the_operator(render: Render) -> None:
    got = settings_for(render, OPTIONS["tuning"])
    assert got.report_token_seconds == 900
    assert got.report_audience == "ml.example"
    assert got.report_listen == "0.0.0.0:9443"
    assert got.summary_sync_seconds == 2.5
    assert got.inline_env_max_bytes == 65536
    assert got.cluster_domain == "corp.example"
    assert got.addressing == "loopback"
    assert got.evaluator_in_cluster is True
    assert got.success_policy == "allWorkers"
    assert got.polyaxon_env is True
    assert settings_for(render, {}).polyaxon_env is False


def test_large_numbers_are_not_rendered_in_float_notation(render: Render) -> None:
    """Helm decodes values as float64: 1e6 must still reach the operator as an integer."""
    env = container_env(render({"inlineEnvMaxBytes": 100000, "report": {"tokenSeconds": 86400}}))
    assert env[s.ENV_INLINE_ENV_MAX_BYTES] == "100000"
    assert env[s.ENV_REPORT_TOKEN_SECONDS] == "86400"


def test_data_stores_env_is_the_json_settings_expects(render: Render) -> None:
    env = container_env(render(OPTIONS["data-stores"]))
    assert json.loads(env[s.ENV_DATA_STORES]) == {
        "imagenet": {"claim": "imagenet-pvc"},
        "raw": {"hostPath": "/mnt/raw"},
    }
