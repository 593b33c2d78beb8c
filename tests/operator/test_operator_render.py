"""Rendering: Service, context ConfigMap and pods, checked as objects and through the SDK."""

import copy
import json
import os

import pytest
from incluster import context, contract, topology
from incluster_operator.api import InvalidSpec, names, validate
from incluster_operator.render import ExperimentMeta, plan, render_all, render_pod
from incluster_operator.settings import Settings, VolumeSource

META = ExperimentMeta(name="xp", namespace="team", uid="0b5e0c1e-7c44-4f4b-9d1c-2a0f3f6f0c11")
SETTINGS = Settings(
    outputs=VolumeSource(claim="outputs"),
    data_stores={"imagenet": VolumeSource(claim="imagenet"), "raw": VolumeSource(host_path="/d")},
)
CONTAINER = {"name": "main", "image": "python:3.11", "command": ["python", "train.py"]}


def raw_spec(framework="tensorflow", workers=2, **extra):
    template = {"spec": {"containers": [copy.deepcopy(CONTAINER)]}}
    return {
        "project": "mnist",
        "framework": framework,
        "replicas": {
            "master": {"template": copy.deepcopy(template)},
            "worker": {"replicas": workers, "port": 3333, "template": copy.deepcopy(template)},
            "ps": {"template": copy.deepcopy(template)},
        },
        **extra,
    }


def render(raw, settings=SETTINGS, meta=META):
    return render_all(validate(raw, meta.name, settings), meta, settings)


def env_of(container):
    return {e["name"]: e.get("value") for e in container["env"]}


def pod_named(children, name):
    (pod,) = [p for p in children.pods if p["metadata"]["name"] == name]
    return pod


def test_one_headless_service_for_the_whole_experiment():
    service = render(raw_spec()).service
    assert service["metadata"]["name"] == "xp"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == names.selector("xp", META.uid)
    assert [p["port"] for p in service["spec"]["ports"]] == [2222, 3333]
    assert service["metadata"]["ownerReferences"][0]["uid"] == META.uid


def test_one_pod_per_replica_with_hostname_subdomain_labels_and_owner():
    children = render(raw_spec())
    got = sorted(p["metadata"]["name"] for p in children.pods)
    assert got == ["xp-master-0", "xp-ps-0", "xp-worker-0", "xp-worker-1"]
    pod = pod_named(children, "xp-worker-1")
    assert pod["spec"]["hostname"] == "xp-worker-1"
    assert pod["spec"]["subdomain"] == "xp"
    labels = pod["metadata"]["labels"]
    assert labels[names.LABEL_REPLICA_TYPE] == "worker"
    assert labels[names.LABEL_REPLICA_INDEX] == "1"
    assert labels.items() >= names.selector("xp", META.uid).items()
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "incluster.dev/v1alpha1",
        "kind": "Experiment",
        "name": "xp",
        "uid": META.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert pod["spec"]["restartPolicy"] == "Never"


def test_context_config_map_holds_the_document_and_the_cluster():
    children = render(raw_spec(declarations={"lr": 0.1}, logLevel="DEBUG", data=["imagenet"]))
    data = children.config_map["data"]
    cluster = json.loads(data[contract.FILE_CLUSTER])
    assert cluster["worker"] == [
        "xp-worker-0.xp.team.svc.cluster.local:3333",
        "xp-worker-1.xp.team.svc.cluster.local:3333",
    ]
    assert list(cluster) == ["master", "worker", "ps"]
    doc = json.loads(data[contract.FILE_CONTEXT])
    assert doc[contract.KEY_VERSION] == contract.CONTEXT_VERSION
    assert doc[contract.KEY_DECLARATIONS] == {"lr": 0.1}
    assert doc[contract.KEY_LOG_LEVEL] == "DEBUG"
    assert doc[contract.KEY_OUTPUTS_PATH] == f"/outputs/team/mnist/xp/{META.uid}"
    assert doc[contract.KEY_DATA_PATHS] == {"imagenet": "/data/imagenet"}
    assert doc[contract.KEY_EXPERIMENT_INFO]["experiment_uuid"] == META.uid


def test_env_and_mounts_reach_every_container_including_init_containers():
    raw = raw_spec()
    worker = raw["replicas"]["worker"]["template"]["spec"]
    worker["initContainers"] = [{"name": "fetch", "image": "busybox"}]
    worker["containers"].append({"name": "sidecar", "image": "busybox"})
    pod = pod_named(render(raw), "xp-worker-0")
    containers = pod["spec"]["initContainers"] + pod["spec"]["containers"]
    assert [c["name"] for c in containers] == ["fetch", "main", "sidecar"]
    for container in containers:
        env = env_of(container)
        assert json.loads(env[contract.ENV_TASK_INFO]) == {"type": "worker", "index": 0}
        assert env[contract.ENV_CONTEXT_DIR] == contract.DEFAULT_CONTEXT_DIR
        assert {m["name"] for m in container["volumeMounts"]} >= {
            names.VOLUME_CONTEXT,
            names.VOLUME_OUTPUTS,
        }


def test_outputs_are_mounted_per_run_and_refs_and_data_read_only():
    raw = raw_spec(
        group="sweep",
        data=["raw", "imagenet"],
        outputsRefs={"experiments": ["xp0", "other/xp1"], "jobs": ["prep"]},
    )
    settings = SETTINGS
    spec = validate(raw, META.name, settings)
    children = render_all(spec, META, settings, {"xp0": "run-a", "other/xp1": "run-b"})
    pod = pod_named(children, "xp-master-0")
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    # This run's own directory: a re-created Experiment (new uid) never shares it.
    outputs = mounts[f"/outputs/team/mnist/sweep/xp/{META.uid}"]
    assert outputs["subPath"] == f"team/mnist/sweep/xp/{META.uid}"
    assert not outputs.get("readOnly")
    # An experiment ref mounts the run it resolved to; a job ref has no run level.
    assert mounts["/refs/experiments/xp0"]["subPath"] == "team/mnist/sweep/xp0/run-a"
    assert mounts["/refs/experiments/other.xp1"]["subPath"] == "team/other/xp1/run-b"
    assert mounts["/refs/jobs/prep"]["subPath"] == "team/mnist/sweep/prep"
    assert mounts[contract.DEFAULT_CONTEXT_DIR]["readOnly"] is True
    for path in ("/refs/experiments/xp0", "/refs/jobs/prep", "/data/raw", "/data/imagenet"):
        assert mounts[path]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[names.VOLUME_OUTPUTS]["persistentVolumeClaim"] == {"claimName": "outputs"}
    assert volumes["incluster-data-0"]["hostPath"]["path"] == "/d"
    sources = volumes[names.VOLUME_CONTEXT]["projected"]["sources"]
    assert sources == [
        {"configMap": {"name": "xp-context"}},
        {
            "serviceAccountToken": {
                "audience": "incluster.dev",
                "expirationSeconds": 600,
                "path": f"{contract.DIR_TOKEN}/{contract.FILE_TOKEN}",
            }
        },
    ]
    env = env_of(pod["spec"]["containers"][0])
    assert json.loads(env[contract.ENV_OUTPUTS_REFS_PATHS]) == {
        "jobs": ["/refs/jobs/prep"],
        "experiments": ["/refs/experiments/xp0", "/refs/experiments/other.xp1"],
    }


def test_user_env_volumes_and_service_account_are_kept():
    raw = raw_spec(data=["raw"])
    spec = raw["replicas"]["master"]["template"]["spec"]
    spec["serviceAccountName"] = "trainer"
    spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    spec["containers"][0]["env"] = [{"name": "LR", "value": "0.1"}]
    # A mount around one of the operator's (/data holds /data/raw) is allowed.
    spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/data"}]
    raw["replicas"]["master"]["template"]["metadata"] = {
        "labels": {"team": "vision"},
        "annotations": {"note": "x"},
    }
    pod = pod_named(render(raw), "xp-master-0")
    assert pod["spec"]["serviceAccountName"] == "trainer"
    assert {"name": "scratch", "emptyDir": {}} in pod["spec"]["volumes"]
    container = pod["spec"]["containers"][0]
    assert container["env"][-1] == {"name": "LR", "value": "0.1"}
    assert container["volumeMounts"][-1] == {"name": "scratch", "mountPath": "/data"}
    assert pod["metadata"]["labels"]["team"] == "vision"
    assert pod["metadata"]["annotations"] == {"note": "x"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda s: s["containers"][0].update(env=[{"name": "TF_CONFIG", "value": "{}"}]),
            "containers[0].env[0]: TF_CONFIG is set by the operator",
        ),
        (
            lambda s: s.update(volumes=[{"name": "incluster-context", "emptyDir": {}}]),
            "volumes[0]: the name 'incluster-context' is reserved",
        ),
        (
            lambda s: s["containers"][0].update(
                volumeMounts=[{"name": "v", "mountPath": "/var/run/incluster/mine"}]
            ),
            "volumeMounts[0]: mountPath '/var/run/incluster/mine' is at or inside",
        ),
        (lambda s: s.update(hostname="mine"), "spec.hostname: the operator sets it"),
        (lambda s: s.update(restartPolicy="Always"), "spec.restartPolicy: 'Always' conflicts"),
    ],
)
def test_clashes_with_the_operator_are_invalid_specs(mutate, message):
    raw = raw_spec()
    mutate(raw["replicas"]["worker"]["template"]["spec"])
    with pytest.raises(InvalidSpec, match=r"spec\.replicas\.worker\.template") as info:
        render(raw)
    assert message in str(info.value)


def test_the_template_is_not_mutated_and_output_is_deterministic():
    spec = validate(raw_spec(declarations={"b": 1, "a": [1, 2]}), "xp", SETTINGS)
    before = copy.deepcopy(spec.replicas["worker"].template)
    first = render_all(spec, META, SETTINGS)
    second = render_all(spec, META, SETTINGS)
    assert spec.replicas["worker"].template == before
    assert json.dumps(first.pods, sort_keys=False) == json.dumps(second.pods, sort_keys=False)
    assert first == second


def test_small_clusters_are_inlined_and_match_topology():
    children = render(raw_spec())
    env = env_of(pod_named(children, "xp-worker-1")["spec"]["containers"][0])
    cluster = json.loads(children.config_map["data"][contract.FILE_CLUSTER])
    assert json.loads(env[contract.ENV_CLUSTER]) == cluster
    assert json.loads(env[contract.ENV_TF_CONFIG]) == topology.tf_config(cluster, "worker", 1)
    assert contract.ENV_CLUSTER_IN_FILE not in env


def test_large_clusters_stay_in_the_file():
    settings = Settings(inline_env_max_bytes=100)
    env = env_of(render(raw_spec(workers=8), settings).pods[0]["spec"]["containers"][0])
    assert contract.ENV_CLUSTER not in env
    assert contract.ENV_TF_CONFIG not in env
    assert env[contract.ENV_CLUSTER_IN_FILE] == "1"


def test_pytorch_env_points_at_the_master():
    children = render(raw_spec(framework="pytorch", workers=3))
    env = env_of(pod_named(children, "xp-worker-2")["spec"]["containers"][0])
    assert env["MASTER_ADDR"] == "xp-master-0.xp.team.svc.cluster.local"
    assert env["MASTER_PORT"] == "2222"
    assert (env["WORLD_SIZE"], env["RANK"]) == ("4", "3")
    assert contract.ENV_TF_CONFIG not in env
    ps_env = env_of(pod_named(children, "xp-ps-0")["spec"]["containers"][0])
    assert "RANK" not in ps_env


def test_loopback_addressing_gives_distinct_addresses_and_keeps_ports():
    settings = Settings(addressing="loopback")
    cluster = plan(validate(raw_spec(workers=3), "xp", settings), META, settings).cluster
    addresses = [a for group in cluster.values() for a in group]
    assert len(set(addresses)) == len(addresses) == 5
    assert all(a.startswith("127.") for a in addresses)
    assert all(a.endswith(":3333") for a in cluster["worker"])


@pytest.mark.parametrize("in_cluster", [True, False])
def test_the_evaluator_is_in_the_cluster_only_when_configured(in_cluster):
    raw = raw_spec()
    raw["replicas"]["evaluator"] = copy.deepcopy(raw["replicas"]["ps"])
    settings = Settings(evaluator_in_cluster=in_cluster)
    children = render(raw, settings)
    cluster = json.loads(children.config_map["data"][contract.FILE_CLUSTER])
    assert ("evaluator" in cluster) is in_cluster
    env = env_of(pod_named(children, "xp-evaluator-0")["spec"]["containers"][0])
    assert json.loads(env[contract.ENV_TF_CONFIG])["task"] == {"type": "evaluator", "index": 0}


def _pod_bytes(replicas, settings):
    spec = validate(raw_spec(workers=replicas), "xp", settings)
    return len(json.dumps(render_pod(plan(spec, META, settings), "worker", 0)).encode())


def test_pod_size_is_flat_in_the_replica_count_above_the_threshold():
    settings = Settings(inline_env_max_bytes=0)
    sizes = {r: _pod_bytes(r, settings) for r in (1, 100, 1000, 4000)}
    assert max(sizes.values()) - min(sizes.values()) <= 8, sizes
    default = Settings()
    big = {r: _pod_bytes(r, default) for r in (100, 1000, 4000)}
    assert max(big.values()) - min(big.values()) <= 8, big
    assert _pod_bytes(1, default) < big[4000] + default.inline_env_max_bytes * 2


def test_the_sdk_reads_back_what_was_rendered(tmp_path, monkeypatch):
    """Materialise the ConfigMap and one container's env as a kubelet would; ask the SDK."""
    settings = Settings(inline_env_max_bytes=0, context_dir=str(tmp_path))
    children = render(raw_spec(declarations={"lr": 0.5}, data=[]), settings)
    for name, text in children.config_map["data"].items():
        (tmp_path / name).write_text(text)
    for key in [k for k in os.environ if k.startswith("INCLUSTER_") or k == "TF_CONFIG"]:
        monkeypatch.delenv(key)
    for name, value in env_of(pod_named(children, "xp-worker-1")["spec"]["containers"][0]).items():
        monkeypatch.setenv(name, value)
    cluster = json.loads(children.config_map["data"][contract.FILE_CLUSTER])
    assert context.get_task_info() == {"type": "worker", "index": 1}
    assert context.get_cluster_def() == cluster
    assert context.get_tf_config() == topology.tf_config(cluster, "worker", 1)
    assert context.get_declarations() == {"lr": 0.5}
    assert context.get_outputs_path() == f"/outputs/team/mnist/xp/{META.uid}"
    assert context.get_experiment_info()["experiment_name"] == "xp"


def test_meta_from_the_api_metadata_and_the_pod_selector():
    body_meta = {"name": "xp", "namespace": "team", "uid": META.uid, "generation": 2}
    assert ExperimentMeta.from_metadata(body_meta) == META
    selector = names.label_selector("xp", META.uid)
    assert selector == f"incluster.dev/experiment=xp,incluster.dev/experiment-uid={META.uid}"
    pod = render(raw_spec()).pods[0]
    labels = pod["metadata"]["labels"]
    assert all(labels[k] == v for k, v in (item.split("=") for item in selector.split(",")))


@pytest.mark.parametrize(
    ("setting", "spec_value", "expected"),
    [
        (False, None, False),  # the documented default: our names only
        (True, None, True),  # the chart-wide setting
        (False, True, True),  # the per-Experiment opt-in
        (True, False, False),  # an Experiment may also opt out
    ],
)
def test_the_seeds_polyaxon_env_names_are_injected_when_asked(setting, spec_value, expected):
    settings = Settings(outputs=VolumeSource(claim="outputs"), polyaxon_env=setting)
    extra = {} if spec_value is None else {"polyaxonEnv": spec_value}
    raw = raw_spec(declarations={"lr": 0.1}, logLevel="INFO", **extra)
    pod = pod_named(render(raw, settings), "xp-worker-1")
    env = env_of(pod["spec"]["containers"][0])
    seed = {k: v for k, v in env.items() if k.startswith("POLYAXON_")}
    if not expected:
        assert seed == {}
        return
    # every seed name the contract lists, each with exactly our value
    assert set(seed) == set(contract.SEED_ENV.values())
    for ours, alias in contract.SEED_ENV.items():
        assert seed[alias] == env[ours], alias
    assert json.loads(seed["POLYAXON_TASK_INFO"]) == {"type": "worker", "index": 1}


def test_the_sdk_reads_the_seed_names_when_ours_are_absent(monkeypatch):
    settings = Settings(outputs=VolumeSource(claim="outputs"), polyaxon_env=True)
    pod = pod_named(render(raw_spec(declarations={"lr": 0.1}), settings), "xp-worker-0")
    env = env_of(pod["spec"]["containers"][0])
    for name in list(os.environ):
        if name.startswith(("INCLUSTER_", "POLYAXON_")) or name == "TF_CONFIG":
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("POLYAXON_"):  # only the seed's names: ours are absent
            monkeypatch.setenv(name, value)
    assert context.is_in_cluster()
    assert context.get_task_info() == {"type": "worker", "index": 0}
    assert context.get_declarations() == {"lr": 0.1}
    assert context.get_cluster_def() == json.loads(env[contract.ENV_CLUSTER])
    assert context.get_outputs_path() == env[contract.ENV_OUTPUTS_PATH]
    assert context.get_experiment_info()["experiment_name"] == "xp"
    # ours wins when both are there
    monkeypatch.setenv(contract.ENV_DECLARATIONS, '{"lr": 0.5}')
    assert context.get_declarations() == {"lr": 0.5}
    # a broken alias is named in the error
    monkeypatch.delenv(contract.ENV_DECLARATIONS)
    monkeypatch.setenv("POLYAXON_DECLARATIONS", "{nope")
    with pytest.raises(context.ContextError, match="POLYAXON_DECLARATIONS"):
        context.get_declarations()


def test_outputs_in_an_object_store_reach_pods_as_a_url_and_refs_as_urls():
    settings = Settings(
        outputs_url="s3://ml/team",
        upload_seconds=3.0,
        data_stores={
            "imagenet": VolumeSource(url="gs://sets/imagenet"),
            "raw": VolumeSource(host_path="/d"),
        },
    )
    raw = raw_spec(outputsRefs={"experiments": ["xp0", "other/xp1"]}, data=["imagenet", "raw"])
    pod = pod_named(render(raw, settings), "xp-master-0")
    container = pod["spec"]["containers"][0]
    env = env_of(container)
    run = json.loads(env[contract.ENV_EXPERIMENT_INFO])["experiment_uuid"]
    assert env[contract.ENV_OUTPUTS_URL] == f"s3://ml/team/team/mnist/xp/{run}"
    assert env[contract.ENV_UPLOAD_SECONDS] == "3"
    assert env[contract.ENV_OUTPUTS_PATH] == f"/outputs/team/mnist/xp/{run}"  # written locally
    assert json.loads(env[contract.ENV_OUTPUTS_REFS_PATHS]) == {
        "jobs": [],
        "experiments": ["s3://ml/team/team/mnist/xp0", "s3://ml/team/team/other/xp1"],
    }
    assert json.loads(env[contract.ENV_DATA_PATHS]) == {
        "imagenet": "gs://sets/imagenet",
        "raw": "/data/raw",
    }
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert f"/outputs/team/mnist/xp/{run}" in mounts  # the local staging directory
    assert not any(m.startswith("/refs") for m in mounts)  # refs are read by URL
    assert "/data/raw" in mounts
    assert "/data/imagenet" not in mounts
    outputs = [v for v in pod["spec"]["volumes"] if v["name"] == names.VOLUME_OUTPUTS]
    assert outputs == [{"name": names.VOLUME_OUTPUTS, "emptyDir": {}}]
    # no credential of any kind is rendered: the pod brings its own
    assert not [k for k in env if k.startswith(("AWS_", "GOOGLE_", "AZURE_"))]


def test_an_experiment_refs_url_names_the_run_it_resolved_to():
    settings = Settings(outputs_url="s3://ml/team")
    raw = raw_spec(outputsRefs={"experiments": ["xp0"]})
    spec = validate(raw, META.name, settings)
    children = render_all(spec, META, settings, {"xp0": "run-1"})
    env = env_of(pod_named(children, "xp-master-0")["spec"]["containers"][0])
    refs = json.loads(env[contract.ENV_OUTPUTS_REFS_PATHS])
    assert refs["experiments"] == ["s3://ml/team/team/mnist/xp0/run-1"]


def test_no_credential_in_env_or_configmap_and_the_ca_and_url_travel_in_the_context():
    settings = Settings(report_url="https://op.ops.svc:8443", report_ca_pem="-----BEGIN CERT")
    children = render(raw_spec(), settings)
    data = children.config_map["data"]
    assert set(data) == {
        contract.FILE_CONTEXT,
        contract.FILE_CLUSTER,
        contract.FILE_RUN_SPEC,
        contract.FILE_REPORT_CA,
    }
    assert data[contract.FILE_REPORT_CA] == "-----BEGIN CERT"  # public: a CA certificate
    assert json.loads(data[contract.FILE_CONTEXT])[contract.KEY_REPORT_URL] == settings.report_url
    for pod in children.pods:
        spec = pod["spec"]
        assert "serviceAccountName" not in spec  # the user's choice, untouched
        assert "automountServiceAccountToken" not in spec
        for container in spec["containers"]:
            for var in container["env"]:
                assert "valueFrom" not in var
                assert "TOKEN" not in var["name"]
        secrets = [
            s
            for v in spec["volumes"]
            for s in (v.get("projected") or {}).get("sources", [])
            if "secret" in s
        ]
        assert secrets == []
        assert not any("secret" in v for v in spec["volumes"])


def test_operator_env_values_are_escaped_for_the_kubelet():
    raw = raw_spec(declarations={"password": "pa$$word"}, logLevel="$(HOME)")
    env = env_of(render(raw).pods[0]["spec"]["containers"][0])
    assert env[contract.ENV_LOG_LEVEL] == "$$(HOME)"
    assert json.loads(env[contract.ENV_DECLARATIONS].replace("$$", "$")) == {"password": "pa$$word"}
