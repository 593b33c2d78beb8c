"""Where a pod's references (ConfigMaps, Secrets, tokens) are resolved from.

The planner asks through this protocol so that it stays pure: the pod runner answers
from the Kubernetes API, the local runner from the objects it rendered itself.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TokenRequest:
    """What a projected ``serviceAccountToken`` source asks for, bound to its pod.

    A kubelet binds the token to the pod (name and uid), so it dies with the pod and a
    TokenReview names the pod; the pod runner does the same.
    """

    namespace: str
    service_account: str
    audience: str
    pod_name: str = ""
    pod_uid: str = ""
    expiration_seconds: int = 3600


class Lookups(Protocol):
    """Answers a pod's references; ``None`` means "does not exist (yet)"."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The ConfigMap's ``data`` and ``binaryData`` merged, as bytes."""
        ...

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The Secret's data, base64-decoded."""
        ...

    def token(self, request: TokenRequest) -> bytes:
        """A token for a projected ``serviceAccountToken`` source."""
        ...


@dataclass(frozen=True)
class StaticLookups:
    """Lookups over objects held in memory, keyed by (namespace, name)."""

    config_maps: Mapping[tuple[str, str], Mapping[str, bytes]] = field(default_factory=dict)
    secrets: Mapping[tuple[str, str], Mapping[str, bytes]] = field(default_factory=dict)
    #: What a projected token source gets: there is no API server to sign one locally.
    fixed_token: bytes = b"local-token-without-api-access"

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get((namespace, name))

    def token(self, request: TokenRequest) -> bytes:
        return self.fixed_token


def config_map_bytes(obj: Mapping[str, object]) -> dict[str, bytes]:
    """A ConfigMap object (API JSON form) -> its keys as bytes."""
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    out: dict[str, bytes] = {}
    if isinstance(data, Mapping):
        out.update({str(k): str(v).encode() for k, v in data.items()})
    if isinstance(binary, Mapping):
        out.update({str(k): base64.b64decode(str(v)) for k, v in binary.items()})
    return out


def secret_bytes(obj: Mapping[str, object]) -> dict[str, bytes]:
    """A Secret object (API JSON form) -> its keys as bytes (``stringData`` included)."""
    data = obj.get("data") or {}
    string_data = obj.get("stringData") or {}
    out: dict[str, bytes] = {}
    if isinstance(data, Mapping):
        out.update({str(k): base64.b64decode(str(v)) for k, v in data.items()})
    if isinstance(string_data, Mapping):
        out.update({str(k): str(v).encode() for k, v in string_data.items()})
    return out
