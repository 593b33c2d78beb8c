"""Pod spec -> local plan: env sources, volumes, the mount-path remapping rule, errors."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from incluster_operator.local import paths
from incluster_operator.local.errors import PodSpecError
from incluster_operator.local.lookups import StaticLookups, config_map_bytes, secret_bytes
from incluster_operator.local.plan import Layout, Node, expand, materialise, plan_pod

NS = "team-a"


def pod(**spec_overrides):
    spec = {
        "hostname": "xp-worker-1",
        "subdomain": "xp",
        "restartPolicy": "Never",
        "volumes": [
            {"name": "context", "configMap": {"name": "xp-context"}},
            {
                "name": "token",
                "projected": {
                    "sources": [
                        {
                            "secret": {
                                "name": "xp-token",
                                "items": [{"key": "token", "path": "token"}],
                            }
                        },
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                    ]
                },
            },
            {"name": "outputs", "persistentVolumeClaim": {"claimName": "outputs"}},
            {"name": "scratch", "emptyDir": {}},
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    ]
                },
            },
        ],
        "initContainers": [
            {
                "name": "prepare",
                "command": ["sh", "-c", "echo ready > /scratch/flag"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            },
        ],
        "containers": [
            {
                "name": "main",
                "image": "ignored:latest",
                "command": ["python", "/outputs/train.py"],
                "args": ["--data=/outputs/data", "--rank", "$(RANK)", "$$(RANK)"],
                "workingDir": "/scratch",
                "env": [
                    {"name": "RANK", "value": "1"},
                    {"name": "INCLUSTER_CONTEXT_DIR", "value": "/var/run/incluster"},
                    {"name": "OUT", "value": "/outputs/team-a/xp"},
                    {"name": "PATHS", "value": json.dumps({"d": "/outputs/d", "e": "/outputsx"})},
                    {"name": "TOKEN", "value": "/var/run/incluster/token/token"},
                    {"name": "WHO", "value": "rank-$(RANK)-$(UNDEFINED)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "ROLE",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['role']"}},
                    },
                    {
                        "name": "LEVEL",
                        "valueFrom": {"configMapKeyRef": {"name": "xp-context", "key": "level"}},
                    },
                    {
                        "name": "PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                    },
                    {
                        "name": "MAYBE",
                        "valueFrom": {
                            "secretKeyRef": {"name": "absent", "key": "k", "optional": True}
                        },
                    },
                ],
                "envFrom": [{"configMapRef": {"name": "xp-env"}, "prefix": "CM_"}],
                "volumeMounts": [
                    {"name": "context", "mountPath": "/var/run/incluster"},
                    {"name": "token", "mountPath": "/var/run/incluster/token"},
                    {"name": "outputs", "mountPath": "/outputs"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "podinfo", "mountPath": "/etc/podinfo/"},
                ],
            }
        ],
    }
    spec.update(spec_overrides)
    return {
        "metadata": {
            "name": "xp-worker-1",
            "namespace": NS,
            "uid": "0a1b2c3d-ffff",
            "labels": {"role": "worker", "app": "xp"},
        },
        "spec": spec,
    }


LOOKUPS = StaticLookups(
    config_maps={
        (NS, "xp-context"): config_map_bytes(
            {
                "data": {"context.json": '{"version": 1}', "level": "DEBUG"},
                "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()},
            }
        ),
        (NS, "kube-root-ca.crt"): {"ca.crt": b"CERT"},
        (NS, "xp-env"): {"level": b"DEBUG"},
    },
    secrets={
        (NS, "xp-token"): secret_bytes({"data": {"token": base64.b64encode(b"tok").decode()}}),
        (NS, "db"): secret_bytes({"stringData": {"password": "hunter2"}}),
    },
)


def plan(tmp_path, p=None, lookups=LOOKUPS):
    return plan_pod(
        p or pod(),
        lookups,
        Layout(tmp_path),
        node=Node(pod_ip="127.9.0.2"),
        base_env={"PATH": "/usr/bin"},
    )


def test_env_sources_and_expansion(tmp_path):
    env = plan(tmp_path).containers[0].env
    assert env["RANK"] == "1"
    assert env["WHO"] == "rank-1-$(UNDEFINED)"
    assert env["POD"] == "xp-worker-1"
    assert env["IP"] == "127.9.0.2"
    assert env["ROLE"] == "worker"
    assert env["LEVEL"] == "DEBUG"
    assert env["PASSWORD"] == "hunter2"
    assert "MAYBE" not in env
    assert env["CM_level"] == "DEBUG"
    assert env["HOSTNAME"] == "xp-worker-1"
    assert env["PATH"] == "/usr/bin"


def test_mount_paths_are_remapped_in_env_argv_and_working_dir(tmp_path):
    p = plan(tmp_path)
    main = p.containers[0]
    vol = p.pod_dir / "volumes"
    assert p.pod_dir == tmp_path / "pods" / NS / "xp-worker-1-0a1b2c3d"
    assert main.env["INCLUSTER_CONTEXT_DIR"] == str(vol / "context")
    assert main.env["TOKEN"] == str(vol / "token" / "token")  # nested mount wins
    # A claim (or hostPath) volume is named by its shared directory, not the pod's link to
    # it: a path a replica prints is one the user can open.
    out = tmp_path / "claims" / NS / "outputs"
    assert main.env["OUT"] == str(out / NS / "xp")
    # Inside JSON: quoted whole paths are rewritten, a longer name sharing the prefix is not.
    assert json.loads(main.env["PATHS"]) == {"d": str(out / "d"), "e": "/outputsx"}
    assert main.argv == (
        "python",
        str(out / "train.py"),
        f"--data={out / 'data'}",
        "--rank",
        "1",
        "$(RANK)",
    )
    assert main.cwd == vol / "scratch"


def test_remap_only_touches_whole_path_prefixes():
    mounts = {"/data": Path("/L/data"), "/data/in": Path("/L/in")}
    pattern = paths.remapper(mounts)
    cases = {
        "/data": "/L/data",
        "/data/x": "/L/data/x",
        "/data/in/y": "/L/in/y",
        "/database": "/database",
        "x/data": "x/data",
        "a:/data/b,/data": "a:/L/data/b,/L/data",
        "file:///data": "file:///data",
    }
    assert {k: paths.remap(k, mounts, pattern) for k in cases} == cases


def test_materialised_volumes(tmp_path):
    p = plan(tmp_path)
    materialise(p)
    vol = p.pod_dir / "volumes"
    assert (vol / "context" / "context.json").read_text() == '{"version": 1}'
    assert (vol / "context" / "blob").read_bytes() == b"\x00\x01"
    assert (vol / "token" / "token").read_bytes() == b"tok"
    assert stat.S_IMODE((vol / "token" / "token").stat().st_mode) == 0o600
    assert (vol / "token" / "ca.crt").read_bytes() == b"CERT"
    assert (vol / "podinfo" / "labels").read_text() == 'app="xp"\nrole="worker"\n'
    assert (vol / "podinfo" / "name").read_text() == "xp-worker-1"
    assert (vol / "scratch").is_dir()
    assert not (vol / "scratch").is_symlink()
    # A claim is shared: another pod mounting it sees the same directory.
    assert (vol / "outputs").resolve() == (tmp_path / "claims" / NS / "outputs").resolve()
    other = pod()
    other["metadata"] = {**other["metadata"], "name": "xp-worker-2", "uid": "99"}
    p2 = plan(tmp_path, other)
    materialise(p2)
    (vol / "outputs" / "shared.txt").write_text("x")
    assert (p2.pod_dir / "volumes" / "outputs" / "shared.txt").read_text() == "x"
    materialise(p)  # idempotent


def test_planned_process_really_sees_its_context(tmp_path):
    script = (
        "import json, os, pathlib; d = pathlib.Path(os.environ['INCLUSTER_CONTEXT_DIR']);"
        "print(json.dumps([json.loads((d / 'context.json').read_text()),"
        " (pathlib.Path(os.environ['TOKEN'])).read_text(), os.getcwd()]))"
    )
    spec = pod()
    spec["spec"]["containers"][0]["command"] = [sys.executable, "-c", script]
    spec["spec"]["containers"][0]["args"] = []
    p = plan(tmp_path, spec)
    materialise(p)
    main = p.containers[0]
    out = subprocess.run(
        main.argv, env=dict(main.env), cwd=main.cwd, capture_output=True, check=True, text=True
    )
    assert json.loads(out.stdout) == [{"version": 1}, "tok", os.path.realpath(main.cwd)]


def test_hostpath_stays_under_the_layout(tmp_path):
    spec = pod(
        volumes=[{"name": "h", "hostPath": {"path": "/etc/xp"}}],
        initContainers=[],
        containers=[
            {"name": "c", "command": ["true"], "volumeMounts": [{"name": "h", "mountPath": "/h"}]}
        ],
    )
    p = plan(tmp_path, spec)
    assert p.links == ((p.pod_dir / "volumes" / "h", tmp_path / "hostpath" / "etc" / "xp"),)


@pytest.mark.parametrize(
    ("mutate", "field", "retriable"),
    [
        (
            lambda s: s["spec"]["volumes"][0]["configMap"].update(name="nope"),
            "spec.volumes[0].configMap",
            True,
        ),
        (
            lambda s: s["spec"]["containers"][0]["env"].append(
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nokey"}}}
            ),
            "spec.containers[0].env[12].valueFrom.secretKeyRef.key",
            True,
        ),
        (
            lambda s: s["spec"]["containers"][0]["envFrom"].append(
                {"configMapRef": {"name": "xp-context"}}
            ),
            "spec.containers[0].envFrom[1] key 'blob'",
            False,
        ),
        (lambda s: s["spec"]["containers"][0].pop("command"), "spec.containers[0].command", False),
        (
            lambda s: s["spec"]["volumes"].append({"name": "../etc", "emptyDir": {}}),
            "spec.volumes[5].name",
            False,
        ),
        (
            lambda s: s["spec"]["volumes"][1]["projected"]["sources"][0]["secret"]["items"][
                0
            ].update(path="../../escape"),
            "spec.volumes[1].projected.sources[0].secret.items[0].path",
            False,
        ),
        (
            lambda s: s["spec"]["containers"][0]["volumeMounts"].append(
                {"name": "scratch", "mountPath": "/"}
            ),
            "spec.containers[0].volumeMounts[5].mountPath",
            False,
        ),
        (
            lambda s: s["spec"]["containers"][0]["volumeMounts"].append(
                {"name": "missing", "mountPath": "/m"}
            ),
            "spec.containers[0].volumeMounts[5].name",
            False,
        ),
        (lambda s: s["metadata"].update(name="../../x"), "metadata.name", False),
        (
            lambda s: s["spec"]["volumes"].append({"name": "nfs", "nfs": {"server": "x"}}),
            "spec.volumes[5]",
            False,
        ),
        (
            lambda s: s["spec"]["containers"][0]["env"].append(
                {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}
            ),
            "spec.containers[0].env[12].valueFrom.fieldRef.fieldPath",
            False,
        ),
    ],
)
def test_bad_specs_name_the_field(tmp_path, mutate, field, retriable):
    spec = pod()
    mutate(spec)
    with pytest.raises(PodSpecError) as err:
        plan(tmp_path, spec)
    assert err.value.field == field
    assert err.value.retriable is retriable
    assert str(err.value).startswith(field)
    assert not (tmp_path / "pods").exists()


def test_expand_escapes():
    assert expand("$(A)-$$(A)-$(B)-$$", {"A": "1"}) == "1-$(A)-$(B)-$"


def test_mapped_hostpath_reaches_the_given_directory(tmp_path):
    store = tmp_path / "real-outputs"
    spec = pod(
        volumes=[{"name": "h", "hostPath": {"path": "/outputs/team"}}],
        initContainers=[],
        containers=[{"name": "c", "command": ["true"]}],
    )
    layout = Layout(tmp_path / "state", host_paths={"/outputs": store})
    p = plan_pod(spec, LOOKUPS, layout, base_env={})
    assert p.links == ((p.pod_dir / "volumes" / "h", store / "team"),)


def test_refresh_rewrites_only_changed_files(tmp_path):
    from incluster_operator.local.plan import refresh_files

    p = plan(tmp_path)
    materialise(p)
    vol = p.pod_dir / "volumes"
    untouched = (vol / "context" / "blob").stat().st_mtime_ns
    changed_lookups = StaticLookups(
        config_maps={**LOOKUPS.config_maps, (NS, "kube-root-ca.crt"): {"ca.crt": b"NEW"}},
        secrets=LOOKUPS.secrets,
    )
    assert refresh_files(plan(tmp_path, lookups=changed_lookups)) == [vol / "token" / "ca.crt"]
    assert (vol / "token" / "ca.crt").read_bytes() == b"NEW"
    assert (vol / "context" / "blob").stat().st_mtime_ns == untouched
    assert refresh_files(plan(tmp_path, lookups=changed_lookups)) == []
