"""Shared helpers of the local-runner tests: unique, parallel-safe copies of examples."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "03-peers.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_example(tmp_path: Path, **spec_changes: Any) -> tuple[Path, dict[str, Any]]:
    """The distributed example in a fresh namespace and on a free port.

    Loopback addresses derive from namespace/name, so a fresh namespace keeps tests
    running in parallel off each other's addresses; the free port makes it certain.
    """
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["namespace"] = f"t-{uuid.uuid4().hex[:10]}"
    port = free_port()
    for replica in doc["spec"]["replicas"].values():
        replica["port"] = port
    doc["spec"].update(spec_changes)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, doc
