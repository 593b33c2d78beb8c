"""Kubeconfig documents pointing at a devcluster: the emulator (plain HTTP) or the real one."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "devcluster"


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(
    url: str,
    namespace: str = "default",
    *,
    ca: Path | None = None,
    client: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """A kubeconfig for `url`.

    The emulator authenticates nobody, so it gets no user secret; the real control plane
    gets its CA and a client certificate, embedded so the file stands alone.
    """
    cluster: dict[str, Any] = {"server": url}
    if ca is not None:
        cluster["certificate-authority-data"] = _data(ca)
    user: dict[str, Any] = {}
    if client is not None:
        user = {
            "client-certificate-data": _data(client[0]),
            "client-key-data": _data(client[1]),
        }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
    }


def write_kubeconfig(
    path: Path,
    url: str,
    *,
    ca: Path | None = None,
    client: tuple[Path, Path] | None = None,
) -> Path:
    """Write atomically (rename), so a reader polling for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    document = kubeconfig(url, ca=ca, client=client)
    partial.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    partial.chmod(0o600)
    partial.replace(path)
    return path
