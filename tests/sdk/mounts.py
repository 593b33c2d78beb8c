"""A context directory written the way the operator writes it (used by the fixtures)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from incluster import contract


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
