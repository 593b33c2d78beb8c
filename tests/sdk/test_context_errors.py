"""A broken context raises ContextError naming the variable or file; never a default."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from incluster import context, contract
from incluster.errors import ContextError

from tests.sdk.mounts import Mount

GOOD_CLUSTER = {"master": ["m:2222"], "worker": ["w0:2222", "w1:2222"]}

# (getter, env var) for every getter that parses JSON from env.
JSON_ENV: list[tuple[Callable[[], Any], str]] = [
    (context.get_cluster_def, contract.ENV_CLUSTER),
    (context.get_tf_config, contract.ENV_TF_CONFIG),
    (context.get_task_info, contract.ENV_TASK_INFO),
    (context.get_experiment_info, contract.ENV_EXPERIMENT_INFO),
    (context.get_declarations, contract.ENV_DECLARATIONS),
    (context.get_outputs_refs_paths, contract.ENV_OUTPUTS_REFS_PATHS),
    (context.get_data_paths, contract.ENV_DATA_PATHS),
]
JSON_IDS = [env for _, env in JSON_ENV]


@pytest.mark.parametrize(("getter", "env"), JSON_ENV, ids=JSON_IDS)
@pytest.mark.parametrize("text", ['{"type": "worker",', "not json", "{'single': 1}"])
def test_malformed_json_in_env(
    getter: Callable[[], Any], env: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, text)
    with pytest.raises(ContextError, match=f"env var {env} is not valid JSON"):
        getter()


@pytest.mark.parametrize(("getter", "env"), JSON_ENV, ids=JSON_IDS)
@pytest.mark.parametrize("text", ["null", "[1, 2]", '"a string"', "42"])
def test_wrong_json_type_in_env(
    getter: Callable[[], Any], env: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, text)
    with pytest.raises(ContextError, match=f"env var {env}"):
        getter()


# (getter, key of context.json, a value of the wrong type)
WRONG_FILE_VALUES: list[tuple[Callable[[], Any], str, Any]] = [
    (context.get_experiment_info, contract.KEY_EXPERIMENT_INFO, ["mnist"]),
    (context.get_declarations, contract.KEY_DECLARATIONS, "lr=0.1"),
    (context.get_log_level, contract.KEY_LOG_LEVEL, 10),
    (context.get_outputs_path, contract.KEY_OUTPUTS_PATH, ["/outputs"]),
    (context.get_outputs_path, contract.KEY_OUTPUTS_PATH, ""),
    (context.get_outputs_refs_paths, contract.KEY_OUTPUTS_REFS_PATHS, {"jobs": "/refs/j1"}),
    (context.get_outputs_refs_paths, contract.KEY_OUTPUTS_REFS_PATHS, {"job": ["/refs/j1"]}),
    (context.get_data_paths, contract.KEY_DATA_PATHS, {"data1": ["/data/1"]}),
    (context.get_data_paths, contract.KEY_DATA_PATHS, ["/data/1"]),
]


@pytest.mark.parametrize(("getter", "key", "value"), WRONG_FILE_VALUES)
def test_wrong_type_in_the_document_names_the_key_and_file(
    getter: Callable[[], Any], key: str, value: Any, mount: Mount
) -> None:
    mount.write({key: value})
    with pytest.raises(ContextError, match=rf"key '{key}' of .*context\.json"):
        getter()


def test_outputs_path_missing_in_a_context_is_an_error(mount: Mount) -> None:
    mount.write({contract.KEY_DECLARATIONS: {}})
    with pytest.raises(ContextError, match="does not say where this experiment writes"):
        context.get_outputs_path()


DOCUMENT_GETTERS = [
    context.get_experiment_info,
    context.get_declarations,
    context.get_log_level,
    context.get_outputs_path,
    context.get_outputs_refs_paths,
    context.get_data_paths,
    context.document,
]


@pytest.mark.parametrize("getter", DOCUMENT_GETTERS, ids=lambda g: g.__name__)
def test_malformed_context_json(getter: Callable[[], Any], mount: Mount) -> None:
    path = mount.write_raw(contract.FILE_CONTEXT, '{"version": 1, "declarations": {')
    with pytest.raises(
        ContextError, match=f"context file {re.escape(str(path))} is not valid JSON"
    ):
        getter()


@pytest.mark.parametrize("getter", DOCUMENT_GETTERS, ids=lambda g: g.__name__)
def test_missing_context_json(getter: Callable[[], Any], mount: Mount) -> None:
    mount.write_raw(contract.FILE_CLUSTER, json.dumps(GOOD_CLUSTER))
    with pytest.raises(ContextError, match=r"context\.json is missing"):
        getter()


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("[]", "must hold a JSON object"),
        ("{}", "integer 'version' >= 1, got None"),
        ('{"version": "1"}', "integer 'version'"),
        ('{"version": true}', "integer 'version'"),
        (json.dumps({"version": contract.CONTEXT_VERSION + 1}), "upgrade the incluster package"),
    ],
)
def test_bad_document_shape_or_version(text: str, fault: str, mount: Mount) -> None:
    mount.write_raw(contract.FILE_CONTEXT, text)
    with pytest.raises(ContextError, match=fault):
        context.get_declarations()


def test_context_dir_that_does_not_exist(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_CONTEXT_DIR, str(tmp_path / "absent"))
    for getter in (context.get_declarations, context.get_cluster_def, context.is_in_cluster):
        with pytest.raises(ContextError, match=f"{contract.ENV_CONTEXT_DIR}=.*absent"):
            getter()


def test_unreadable_file_is_not_called_malformed(mount: Mount) -> None:
    (mount.path / contract.FILE_CLUSTER).mkdir()
    mount.write(cluster=None)
    with pytest.raises(ContextError, match=r"cluster\.json cannot be read"):
        context.get_cluster_def()


# --- the cluster definition -------------------------------------------------------------


def test_missing_cluster_file(mount: Mount, monkeypatch: pytest.MonkeyPatch) -> None:
    mount.write()
    with pytest.raises(ContextError, match=r"cluster\.json is missing"):
        context.get_cluster_def()


def test_malformed_cluster_file(mount: Mount) -> None:
    path = mount.write_raw(contract.FILE_CLUSTER, '{"master": ["m:1"],')
    mount.write()
    with pytest.raises(
        ContextError, match=f"context file {re.escape(str(path))} is not valid JSON"
    ):
        context.get_cluster_def()


@pytest.mark.parametrize(
    ("cluster", "fault"),
    [
        (["m:1"], "must be a JSON object mapping task types"),
        ({"boss": ["b:1"]}, "task type 'boss' is unknown"),
        ({"worker": "w:1"}, "'worker' must be a list of 'host:port' strings"),
        ({"worker": [1]}, "'worker' must be a list"),
        ({"worker": ["w"]}, "'w' is not of the form host:port"),
        ({"worker": ["w:http"]}, "is not of the form host:port"),
        ({"worker": ["w:70000"]}, "outside 1-65535"),
    ],
)
def test_wrong_cluster_shapes(
    cluster: Any, fault: str, mount: Mount, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = mount.write_raw(contract.FILE_CLUSTER, json.dumps(cluster))
    mount.write()
    with pytest.raises(ContextError, match=rf"context file {re.escape(str(path))}.*{fault}"):
        context.get_cluster_def()
    monkeypatch.setenv(contract.ENV_CLUSTER, json.dumps(cluster))
    with pytest.raises(ContextError, match=rf"env var {contract.ENV_CLUSTER}.*{fault}"):
        context.get_cluster_def()


def test_cluster_in_file_flag_without_a_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_CLUSTER_IN_FILE, "1")
    with pytest.raises(ContextError, match=f"{contract.ENV_CLUSTER_IN_FILE}=1"):
        context.get_cluster_def()
    monkeypatch.setenv(contract.ENV_CLUSTER_IN_FILE, "yes")
    with pytest.raises(ContextError, match="must be '0' or '1'"):
        context.get_cluster_def()


# --- the task ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "fault"),
    [
        ({"type": "worker"}, "must be"),
        ({"type": "worker", "index": "1"}, "must be"),
        ({"type": "worker", "index": True}, "must be"),
        ({"type": "worker", "index": 0, "extra": 1}, "must be"),
        ({"type": "boss", "index": 0}, "task type 'boss' is unknown"),
        ({"type": "worker", "index": -1}, "must be >= 0"),
        ({"type": "ps", "index": 0}, "'ps' is not in the cluster definition"),
        ({"type": "worker", "index": 2}, "worker:2 is out of range"),
    ],
)
def test_bad_task_info(task: Any, fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_CLUSTER, json.dumps(GOOD_CLUSTER))
    monkeypatch.setenv(contract.ENV_TASK_INFO, json.dumps(task))
    for getter in (context.get_task_info, context.get_tf_config):
        with pytest.raises(ContextError, match=rf"env var {contract.ENV_TASK_INFO}.*{fault}"):
            getter()


def test_task_info_missing_inside_a_context(mount: Mount) -> None:
    mount.write(cluster=GOOD_CLUSTER)
    with pytest.raises(ContextError, match=f"{contract.ENV_TASK_INFO} is unset"):
        context.get_task_info()
    with pytest.raises(ContextError, match=f"{contract.ENV_TASK_INFO} is unset"):
        context.get_tf_config()


@pytest.mark.parametrize(
    ("config", "fault"),
    [
        ({"task": {"type": "worker", "index": 0}}, 'with "cluster" and "task"'),
        ({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker"}}, "task must be"),
        ({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker", "index": 3}}, "range"),
        ({"cluster": {"worker": "w:1"}, "task": {"type": "worker", "index": 0}}, "list"),
    ],
)
def test_bad_tf_config_env(config: Any, fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.ENV_TF_CONFIG, json.dumps(config))
    with pytest.raises(ContextError, match=rf"env var TF_CONFIG.*{fault}"):
        context.get_tf_config(envvar="EXPORTED_TF_CONFIG")
    assert "EXPORTED_TF_CONFIG" not in os.environ
