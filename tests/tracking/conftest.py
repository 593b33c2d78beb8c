"""Fixtures for the tracking tests: an isolated context and a fresh run per test.

Every test gets an environment without any ``INCLUSTER_*`` variable (so a developer's
shell cannot leak a context in), outputs under its own ``tmp_path``, and the process's
default run ended afterwards, so tests stay independent under pytest-xdist.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from incluster import contract, tracking
from incluster.tracking.run import Run


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No context in env; local outputs under tmp_path. Returns the outputs path."""
    for name in list(os.environ):
        if name.startswith(contract.ENV_PREFIX) or name == contract.ENV_TF_CONFIG:
            monkeypatch.delenv(name)
    outputs = tmp_path / "outputs"
    monkeypatch.setenv(contract.ENV_OUTPUTS_PATH, str(outputs))
    return outputs


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """A run of its own (not the default one), ended after the test."""
    r = Run(tmp_path / "outputs", "worker", 3, register_atexit=False)
    yield r
    r.end()


@pytest.fixture
def default_run(clean_env: Path) -> Iterator[Run]:
    """The module API's default run, initialised from the (clean) context."""
    tracking.end()
    r = tracking.init()
    yield r
    tracking.end()
