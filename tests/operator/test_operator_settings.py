"""Operator settings: defaults, every variable parsed, and errors that name the variable."""

import json

import pytest
from incluster import contract
from incluster_operator import settings as s


def test_defaults_from_an_empty_environment():
    got = s.from_env({})
    assert got == s.Settings()
    assert got.namespaces is None
    assert got.context_dir == contract.DEFAULT_CONTEXT_DIR
    assert got.cluster_domain == "cluster.local"
    assert got.addressing == "dns"
    assert got.report_token_seconds == 600
    assert got.summary_sync_seconds == 10.0
    assert got.outputs.to_k8s() == {"emptyDir": {}}


def test_every_variable_is_read():
    env = {
        s.ENV_NAMESPACES: "team-b, team-a",
        s.ENV_OUTPUTS_CLAIM: "outputs-pvc",
        s.ENV_OUTPUTS_ROOT: "/mnt/outputs/",
        s.ENV_DATA_STORES: json.dumps({"imagenet": {"claim": "in"}, "raw": {"hostPath": "/d"}}),
        s.ENV_DATA_ROOT: "/datasets",
        s.ENV_REFS_ROOT: "/references",
        s.ENV_CONTEXT_DIR: "/ctx",
        s.ENV_INLINE_ENV_MAX_BYTES: "0",
        s.ENV_CLUSTER_DOMAIN: "corp.example",
        s.ENV_EVALUATOR_IN_CLUSTER: "true",
        s.ENV_ADDRESSING: "loopback",
        s.ENV_REPORT_AUDIENCE: "ml.example",
        s.ENV_REPORT_TOKEN_SECONDS: "900",
        s.ENV_REPORT_LISTEN: "[::1]:9443",
        s.ENV_REPORT_URL: "https://op.ops.svc:9443/",
        s.ENV_REPORT_TLS_DIR: "/tls",
        s.ENV_SUMMARY_SYNC_SECONDS: "2.5",
        s.ENV_SUCCESS_POLICY: "allWorkers",
        s.ENV_POLYAXON_ENV: "true",
        s.ENV_OUTPUTS_URL: "s3://bucket/team/",
        s.ENV_UPLOAD_SECONDS: "0.5",
    }
    assert set(env) == set(s.ENV_VARS) - {s.ENV_OUTPUTS_HOST_PATH}
    got = s.from_env(env)
    assert got.namespaces == ("team-a", "team-b")
    assert got.outputs.to_k8s() == {"persistentVolumeClaim": {"claimName": "outputs-pvc"}}
    assert got.outputs_root == "/mnt/outputs"
    assert got.data_stores["imagenet"] == s.VolumeSource(claim="in")
    assert got.data_stores["raw"].to_k8s()["hostPath"] == {
        "path": "/d",
        "type": "DirectoryOrCreate",
    }
    assert (got.data_root, got.refs_root, got.context_dir) == ("/datasets", "/references", "/ctx")
    assert got.inline_env_max_bytes == 0
    assert got.cluster_domain == "corp.example"
    assert got.evaluator_in_cluster is True
    assert got.addressing == "loopback"
    assert got.report_token_seconds == 900
    assert (got.report_audience, got.report_listen) == ("ml.example", "[::1]:9443")
    assert (got.report_url, got.report_tls_dir) == ("https://op.ops.svc:9443", "/tls")
    assert s.split_listen(got.report_listen) == ("::1", 9443)
    assert got.summary_sync_seconds == 2.5
    assert got.success_policy == "allWorkers"
    assert got.polyaxon_env is True
    assert got.outputs_url == "s3://bucket/team"
    assert got.upload_seconds == 0.5


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ("bucket/prefix", "must be an object-store URL"),
        ("ftp://bucket", "must be an object-store URL"),
        ("s3://", "must be an object-store URL"),
        ("s3://key:secret@bucket/x", "no credentials"),
        ("s3://bucket/../x", "no credentials, query or '..'"),
    ],
)
def test_a_bad_outputs_url_names_the_variable_and_the_form(value, fault):
    with pytest.raises(s.SettingsError, match=s.ENV_OUTPUTS_URL) as info:
        s.from_env({s.ENV_OUTPUTS_URL: value})
    assert fault in str(info.value)


def test_a_data_store_may_be_a_url():
    got = s.from_env({s.ENV_DATA_STORES: json.dumps({"imagenet": {"url": "gs://data/in/"}})})
    assert got.data_stores["imagenet"] == s.VolumeSource(url="gs://data/in")
    with pytest.raises(s.SettingsError, match="imagenet"):
        s.from_env({s.ENV_DATA_STORES: json.dumps({"imagenet": {"url": "/in"}})})


def test_every_env_name_has_the_prefix_and_is_unique():
    assert len(set(s.ENV_VARS)) == len(s.ENV_VARS)
    assert all(name.startswith(s.PREFIX) for name in s.ENV_VARS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (s.ENV_NAMESPACES, "ok,Not_A_Namespace"),
        (s.ENV_OUTPUTS_ROOT, "relative/path"),
        (s.ENV_CONTEXT_DIR, "/var/../etc"),
        (s.ENV_DATA_STORES, "[1, 2]"),
        (s.ENV_DATA_STORES, '{"Bad Name": {"claim": "x"}}'),
        (s.ENV_DATA_STORES, '{"d": {"claim": "x", "hostPath": "/x"}}'),
        (s.ENV_DATA_STORES, '{"d": {"nfs": "server"}}'),
        (s.ENV_DATA_STORES, "{not json"),
        (s.ENV_INLINE_ENV_MAX_BYTES, "lots"),
        (s.ENV_INLINE_ENV_MAX_BYTES, "-1"),
        (s.ENV_CLUSTER_DOMAIN, "under_score"),
        (s.ENV_EVALUATOR_IN_CLUSTER, "maybe"),
        (s.ENV_ADDRESSING, "mdns"),
        (s.ENV_REPORT_TOKEN_SECONDS, "60"),
        (s.ENV_REPORT_AUDIENCE, "two words"),
        (s.ENV_REPORT_LISTEN, "8443"),
        (s.ENV_REPORT_LISTEN, "host:99999"),
        (s.ENV_REPORT_URL, "http://op.ops.svc:8443"),
        (s.ENV_REPORT_TLS_DIR, "relative"),
        (s.ENV_SUMMARY_SYNC_SECONDS, "nan"),
        (s.ENV_SUMMARY_SYNC_SECONDS, "0"),
        (s.ENV_SUCCESS_POLICY, "any"),
        (s.ENV_OUTPUTS_CLAIM, "Upper_Case"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(s.SettingsError, match=name):
        s.from_env({name: value})


def test_claim_and_host_path_together_are_refused():
    env = {s.ENV_OUTPUTS_CLAIM: "pvc", s.ENV_OUTPUTS_HOST_PATH: "/srv/outputs"}
    with pytest.raises(s.SettingsError, match="not both"):
        s.from_env(env)


def test_a_misspelt_variable_is_refused_with_the_known_names():
    with pytest.raises(s.SettingsError, match="INCLUSTER_OPERATOR_NAMESPACE'") as info:
        s.from_env({"INCLUSTER_OPERATOR_NAMESPACE": "a"})
    assert s.ENV_NAMESPACES in str(info.value)


def test_settings_are_immutable():
    got = s.from_env({})
    with pytest.raises(AttributeError):
        got.cluster_domain = "x"  # type: ignore[misc]
