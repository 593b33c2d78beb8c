"""incluster.jax_initialize(): one call that joins the JAX world the operator describes."""

from __future__ import annotations

import sys
import types

import pytest
from incluster import ContextError, jax_initialize
from incluster.frameworks import jax_world

WORLD = {
    "JAX_COORDINATOR_ADDRESS": "10.0.0.1:2222",
    "JAX_NUM_PROCESSES": "4",
    "JAX_PROCESS_ID": "2",
}


@pytest.fixture
def fake_jax(monkeypatch):
    """A stand-in `jax` that records what initialize() was given (jax need not be here)."""
    calls: list[dict[str, object]] = []
    jax = types.ModuleType("jax")
    jax.distributed = types.SimpleNamespace(initialize=lambda **kw: calls.append(kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jax", jax)
    for name in WORLD:
        monkeypatch.delenv(name, raising=False)
    return calls


def test_every_value_jax_needs_is_passed(fake_jax, monkeypatch):
    for name, value in WORLD.items():
        monkeypatch.setenv(name, value)
    assert jax_initialize() is True
    assert fake_jax == [
        {"coordinator_address": "10.0.0.1:2222", "num_processes": 4, "process_id": 2}
    ]


def test_jax_keyword_arguments_pass_through_and_win(fake_jax, monkeypatch):
    for name, value in WORLD.items():
        monkeypatch.setenv(name, value)
    jax_initialize(local_device_ids=[0], coordinator_address="override:1")
    assert fake_jax[0]["local_device_ids"] == [0]
    assert fake_jax[0]["coordinator_address"] == "override:1"


def test_without_a_world_it_does_nothing(fake_jax):
    assert jax_initialize() is False
    assert fake_jax == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JAX_COORDINATOR_ADDRESS": "h:1"}, "JAX_NUM_PROCESSES, JAX_PROCESS_ID missing"),
        ({**WORLD, "JAX_NUM_PROCESSES": "four"}, "must be integers"),
        ({**WORLD, "JAX_PROCESS_ID": "4"}, "outside 0..3"),
    ],
)
def test_a_broken_world_is_an_error_naming_the_variable(env, message):
    with pytest.raises(ContextError, match=message):
        jax_world(env)


def test_import_incluster_does_not_import_jax():
    import subprocess

    code = "import incluster, sys; incluster.jax_initialize; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
