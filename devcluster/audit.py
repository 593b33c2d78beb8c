"""Count API requests from a real kube-apiserver's audit log, as the emulator's access log does.

The session's control plane writes every write request, and every request of a
ServiceAccount, at Metadata level (see ``controlplane._audit_policy``): enough to count
what the operator sent (API writes per experiment, retries) and to compare a
ServiceAccount's requests with its RBAC rules, on the same server that enforced them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Request:
    """One audited request: the same fields as the emulator's ``Access``, plus the user."""

    verb: str
    group: str
    resource: str  # "pods", or "experiments/status" for a subresource
    namespace: str | None
    name: str | None
    user: str
    code: int


def _request(event: dict[str, Any]) -> Request | None:
    ref = event.get("objectRef")
    if not isinstance(ref, dict) or event.get("stage") != "ResponseComplete":
        return None
    resource = str(ref.get("resource", ""))
    if ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    return Request(
        verb=str(event.get("verb", "")),
        group=str(ref.get("apiGroup", "")),
        resource=resource,
        namespace=ref.get("namespace"),
        name=ref.get("name"),
        user=str((event.get("user") or {}).get("username", "")),
        code=int((event.get("responseStatus") or {}).get("code", 0)),
    )


def requests(path: Path, namespace: str | None = None) -> Iterator[Request]:
    """The audited requests, oldest first; only ``namespace``'s when given (cheap filter)."""
    needle = f'"namespace":"{namespace}"' if namespace else ""
    with path.open(encoding="utf-8", errors="replace") as log:
        for line in log:
            if needle and needle not in line:
                continue
            try:
                found = _request(json.loads(line))
            except ValueError:
                continue  # a line still being written
            if found is not None and (namespace is None or found.namespace == namespace):
                yield found


def counts(path: Path, namespace: str | None = None) -> Counter[Request]:
    return Counter(requests(path, namespace))
