"""Fixtures for the SDK's read side: a clean env and a context directory on disk.

Every test starts with no incluster/framework env var set (whatever the machine has),
so "neither env nor files" really means local mode. Context files are written the way
the operator writes them: ``context.json`` (keys from incluster.contract) and
``cluster.json`` in the directory named by ``INCLUSTER_CONTEXT_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from incluster import contract

from tests.sdk.mounts import Mount

CONTRACT_ENV = (
    contract.ENV_CLUSTER,
    contract.ENV_TF_CONFIG,
    contract.ENV_TASK_INFO,
    contract.ENV_EXPERIMENT_INFO,
    contract.ENV_DECLARATIONS,
    contract.ENV_LOG_LEVEL,
    contract.ENV_OUTPUTS_PATH,
    contract.ENV_OUTPUTS_REFS_PATHS,
    contract.ENV_DATA_PATHS,
    contract.ENV_CONTEXT_DIR,
    contract.ENV_LOCAL_OUTPUTS_ROOT,
    contract.ENV_CLUSTER_IN_FILE,
    *contract.ENV_PYTORCH,
    *contract.ENV_TORCHRUN,
    *contract.ENV_JAX,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No context env at all, and a private working directory for local outputs."""
    for name in CONTRACT_ENV:
        # setenv first so that monkeypatch records the original state and also removes
        # a variable the code under test sets (get_tf_config(envvar=...) does).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if Path(contract.DEFAULT_CONTEXT_DIR, contract.FILE_CONTEXT).exists():
        pytest.skip(f"this machine has a real context at {contract.DEFAULT_CONTEXT_DIR}")


@pytest.fixture
def mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mount:
    path = tmp_path / "context"
    path.mkdir()
    return Mount(path, monkeypatch)
