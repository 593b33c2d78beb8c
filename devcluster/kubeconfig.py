"""Kubeconfig documents pointing at a devcluster (plain HTTP, no credentials)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "devcluster"


def kubeconfig(url: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for `url`; the emulator authenticates nobody, so there is no user secret."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
    }


def write_kubeconfig(path: Path, url: str) -> Path:
    """Write atomically (rename), so a reader polling for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(yaml.safe_dump(kubeconfig(url), sort_keys=False), encoding="utf-8")
    partial.chmod(0o600)
    partial.replace(path)
    return path
