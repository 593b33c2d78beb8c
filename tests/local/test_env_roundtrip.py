"""Env values reach the process unchanged: the operator escapes ``$``, the runners expand as
the kubelet does (issue: ``pa$$word`` arrived as ``pa$word``, ``$(VAR)`` expanded).

``expand`` is the one function both the pod runner and the local runner use; its cases
are the kubelet's own (``third_party/forked/golang/expansion`` in Kubernetes 1.34).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from incluster import contract
from incluster_operator.api.validation import validate
from incluster_operator.local.lookups import StaticLookups
from incluster_operator.local.plan import Layout, expand, plan_pod
from incluster_operator.render import ExperimentMeta, render_all
from incluster_operator.render.pods import escape_env
from incluster_operator.settings import Settings

ENV = {"VAR_A": "A", "VAR_B": "B", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_EMPTY)", ""),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$$", "$"),
        ("pa$$word", "pa$word"),
        ("$", "$"),
        ("foo$", "foo$"),
        ("$(", "$("),
        ("$(VAR_A", "$(VAR_A"),
        ("$VAR_A", "$VAR_A"),
        ("$()", "$()"),
        ("$($(VAR_A))", "$($(VAR_A))"),
        ("ünï$çødé", "ünï$çødé"),
    ],
)
def test_expand_is_the_kubelets(value: str, expanded: str) -> None:
    assert expand(value, ENV) == expanded


@pytest.mark.parametrize(
    "value", ["pa$$word", "$(INCLUSTER_CONTEXT_DIR)", "$", "a$", "$(", "$$$", "$(X", "é$(é)"]
)
def test_an_escaped_value_expands_to_itself(value: str) -> None:
    assert expand(escape_env(value), {"INCLUSTER_CONTEXT_DIR": "/ctx", "X": "x"}) == value


def test_declarations_and_log_level_round_trip_through_the_runners(tmp_path: Path) -> None:
    declarations = {
        "password": "pa$$word",
        "ref": "$(INCLUSTER_CONTEXT_DIR)",
        "lone": "$",
        "odd": "$( $$$ $(HOME",
        "unicode": "\u0000nul \u202eRTL \U0001f680 \uffff é $(é)",
    }
    spec = {
        "project": "p",
        "declarations": declarations,
        "logLevel": "$(HOME)",
        "replicas": {
            "master": {
                "template": {
                    "spec": {"containers": [{"name": "main", "image": "i", "command": ["true"]}]}
                }
            }
        },
    }
    settings = Settings()
    meta = ExperimentMeta(name="xp", namespace="ns", uid="u-1")
    children = render_all(validate(spec, meta.name, settings), meta, settings)
    config_maps = {
        ("ns", children.config_map["metadata"]["name"]): {
            k: v.encode() for k, v in children.config_map["data"].items()
        }
    }
    plan = plan_pod(
        children.pods[0],
        StaticLookups(config_maps=config_maps),
        Layout(tmp_path),
        base_env={"HOME": "/home/x"},
    )
    (container,) = plan.containers
    assert json.loads(container.env[contract.ENV_DECLARATIONS]) == declarations
    assert container.env[contract.ENV_LOG_LEVEL] == "$(HOME)"
