"""Every getter of incluster.context: env only, files only, both (env wins), neither."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from incluster import context, contract

from tests.sdk.mounts import Mount


@dataclass(frozen=True)
class Case:
    getter: Callable[[], Any]
    env: str
    env_text: str  # exactly what the operator puts in the env var
    env_value: Any  # what the getter returns for it
    key: str
    file_value: Any
    default: Any


CASES = [
    Case(
        context.get_experiment_info,
        contract.ENV_EXPERIMENT_INFO,
        '{"project_name": "env-project", "experiment_name": "xp"}',
        {"project_name": "env-project", "experiment_name": "xp"},
        contract.KEY_EXPERIMENT_INFO,
        {"project_name": "file-project", "experiment_uuid": "u-1"},
        {},
    ),
    Case(
        context.get_declarations,
        contract.ENV_DECLARATIONS,
        '{"lr": 0.1, "layers": [64, 32]}',
        {"lr": 0.1, "layers": [64, 32]},
        contract.KEY_DECLARATIONS,
        {"lr": 0.01, "batch_size": 64},
        {},
    ),
    Case(
        context.get_log_level,
        contract.ENV_LOG_LEVEL,
        "DEBUG",
        "DEBUG",
        contract.KEY_LOG_LEVEL,
        "WARNING",
        None,
    ),
    Case(
        context.get_outputs_refs_paths,
        contract.ENV_OUTPUTS_REFS_PATHS,
        '{"jobs": ["/refs/jobs/j1"], "experiments": []}',
        {"jobs": ["/refs/jobs/j1"], "experiments": []},
        contract.KEY_OUTPUTS_REFS_PATHS,
        {"experiments": ["/refs/experiments/xp0", "/refs/experiments/xp1"]},
        {"jobs": [], "experiments": []},
    ),
    Case(
        context.get_data_paths,
        contract.ENV_DATA_PATHS,
        '{"data1": "/env/data1"}',
        {"data1": "/env/data1"},
        contract.KEY_DATA_PATHS,
        {"data1": "/data/data1", "data2": "/data/data2"},
        {},
    ),
]
IDS = [c.getter.__name__ for c in CASES]


def expected_from_file(case: Case) -> Any:
    if case.getter is context.get_outputs_refs_paths:
        return {"jobs": [], **case.file_value}
    return case.file_value


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_env_only(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(case.env, case.env_text)
    assert case.getter() == case.env_value


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_files_only(case: Case, mount: Mount) -> None:
    mount.write({case.key: case.file_value})
    assert case.getter() == expected_from_file(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_env_wins_over_the_file(case: Case, mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    mount.write({case.key: case.file_value})
    monkeypatch.setenv(case.env, case.env_text)
    assert case.getter() == case.env_value


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_neither_gives_the_local_default(case: Case) -> None:
    assert case.getter() == case.default


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_key_absent_from_the_document_gives_the_default(case: Case, mount: Mount) -> None:
    mount.write({contract.KEY_OUTPUTS_PATH: "/outputs/ns/p/xp"})
    assert case.getter() == case.default


@pytest.mark.parametrize("case", CASES[:2] + CASES[3:], ids=IDS[:2] + IDS[3:])
def test_results_are_fresh_copies(case: Case, mount: Mount) -> None:
    mount.write({case.key: case.file_value})
    first = case.getter()
    first.clear()
    assert case.getter() == expected_from_file(case)


# --- outputs path: a plain string, required inside a context ---------------------------


def test_outputs_path_env_file_both_neither(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    assert context.get_outputs_path() == str(Path.cwd() / "outputs" / "local")
    monkeypatch.setenv(contract.ENV_LOCAL_OUTPUTS_ROOT, "/tmp/elsewhere")
    assert context.get_outputs_path() == "/tmp/elsewhere/local"
    mount.write({contract.KEY_OUTPUTS_PATH: "/outputs/ns/mnist/xp"})
    assert context.get_outputs_path() == "/outputs/ns/mnist/xp"
    monkeypatch.setenv(contract.ENV_OUTPUTS_PATH, "/outputs/ns/mnist/group/xp")
    assert context.get_outputs_path() == "/outputs/ns/mnist/group/xp"
    monkeypatch.delenv(contract.ENV_CONTEXT_DIR)
    assert context.get_outputs_path() == "/outputs/ns/mnist/group/xp"


# --- cluster, task, TF_CONFIG ----------------------------------------------------------

CLUSTER = {"master": ["xp-master-0.xp:2222"], "worker": ["xp-worker-0.xp:2222"]}
OTHER = {"master": ["m.other:1"], "worker": ["w.other:1", "w2.other:1"]}


def test_cluster_def_env_file_both_neither(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    assert context.get_cluster_def() == {}
    monkeypatch.setenv(contract.ENV_CLUSTER, json.dumps(OTHER))
    assert context.get_cluster_def() == OTHER
    mount.write(cluster=CLUSTER)
    assert context.get_cluster_def() == OTHER
    monkeypatch.delenv(contract.ENV_CLUSTER)
    assert context.get_cluster_def() == CLUSTER


def test_cluster_file_replaced_is_read_again(mount: Mount) -> None:
    mount.write(cluster=CLUSTER)
    assert context.get_cluster_def() == CLUSTER
    replacement = mount.path / "cluster.json.new"
    replacement.write_text(json.dumps(OTHER))
    replacement.replace(mount.path / contract.FILE_CLUSTER)  # as the kubelet swaps files
    assert context.get_cluster_def() == OTHER


def test_task_info_env_or_local_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert context.get_task_info() == {"type": "master", "index": 0}
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "worker", "index": 0}')
    monkeypatch.setenv(contract.ENV_CLUSTER, json.dumps(CLUSTER))
    assert context.get_task_info() == {"type": "worker", "index": 0}


def test_tf_config_from_env_wins(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    mount.write(cluster=CLUSTER)
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "worker", "index": 0}')
    inlined = {"cluster": OTHER, "task": {"type": "worker", "index": 1}, "environment": "cloud"}
    monkeypatch.setenv(contract.ENV_TF_CONFIG, json.dumps(inlined))
    assert context.get_tf_config() == inlined


def test_tf_config_built_from_the_file(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    mount.write(cluster=CLUSTER)
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "worker", "index": 0}')
    monkeypatch.setenv("MY_TF_CONFIG", "stale")
    config = context.get_tf_config(envvar="MY_TF_CONFIG")
    assert config["cluster"] == CLUSTER
    assert config["task"] == {"type": "worker", "index": 0}
    assert config["environment"] == "cloud"
    assert json.loads(os.environ["MY_TF_CONFIG"]) == config


def test_tf_config_from_inlined_cluster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_CLUSTER, json.dumps(CLUSTER))
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "master", "index": 0}')
    assert context.get_tf_config() == {
        "cluster": CLUSTER,
        "task": {"type": "master", "index": 0},
        "environment": "cloud",
    }


# --- local mode: nothing set, nothing crashes, nothing exported ------------------------


def test_local_mode_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert context.context_dir() is None
    assert context.document() is None
    assert not context.is_in_cluster()
    assert not context.is_distributed()
    assert context.get_cluster_def() == {}
    assert context.get_task_info() == {"type": "master", "index": 0}
    assert context.get_tf_config(envvar="TF_CONFIG") == {}
    assert "TF_CONFIG" not in os.environ


def test_in_cluster_and_distributed(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    mount.write(cluster={"master": ["m:1"]})
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "master", "index": 0}')
    assert context.is_in_cluster()
    assert not context.is_distributed()
    mount.write(cluster=CLUSTER)
    assert context.is_distributed()


def test_empty_env_value_counts_as_unset(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    mount.write({contract.KEY_DECLARATIONS: {"lr": 1}})
    monkeypatch.setenv(contract.ENV_DECLARATIONS, "")
    assert context.get_declarations() == {"lr": 1}
