"""Fixtures for the SDK's read side: a clean env and a context directory on disk.

Every test starts with no incluster/framework env var set (whatever the machine has),
so "neither env nor files" really means local mode. Context files are written the way
the operator writes them: ``context.json`` (keys from incluster.contract) and
``cluster.json`` in the directory named by ``INCLUSTER_CONTEXT_DIR``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from incluster import contract

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


@dataclass
class Mount:
    """A context directory as the operator mounts it."""

    path: Path
    monkeypatch: pytest.MonkeyPatch

    def write(
        self,
        document: dict[str, Any] | None = None,
        cluster: dict[str, list[str]] | None = None,
        **keys: Any,
    ) -> None:
        """Write context.json (``version`` added) and, if given, cluster.json; set the env."""
        doc = {contract.KEY_VERSION: contract.CONTEXT_VERSION, **(document or {}), **keys}
        (self.path / contract.FILE_CONTEXT).write_text(json.dumps(doc))
        if cluster is not None:
            (self.path / contract.FILE_CLUSTER).write_text(json.dumps(cluster))
        self.monkeypatch.setenv(contract.ENV_CONTEXT_DIR, str(self.path))

    def write_raw(self, name: str, text: str) -> Path:
        """Write any file (broken ones included) into the directory; set the env."""
        target = self.path / name
        target.write_text(text)
        self.monkeypatch.setenv(contract.ENV_CONTEXT_DIR, str(self.path))
        return target


@pytest.fixture
def mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mount:
    path = tmp_path / "context"
    path.mkdir()
    return Mount(path, monkeypatch)
