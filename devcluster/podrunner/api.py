"""The few API calls the pod runner makes, on raw JSON (no model round-trip).

Raw JSON because the runner must pass every field of a pod through to the planner
unchanged, including ones the client's models do not know.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from incluster_operator.local.lookups import config_map_bytes, secret_bytes
from kubernetes import client
from kubernetes.client.exceptions import ApiException

#: Lifetime of the tokens requested for projected serviceAccountToken sources.
TOKEN_SECONDS = 3600
#: What a projected serviceAccountToken gets when the API cannot mint one.
FALLBACK_TOKEN = b"devcluster-token-without-api-access"


def _json(response: Any) -> Any:
    return json.loads(response.data)


def _absent(exc: ApiException) -> bool:
    return bool(exc.status == 404)


class Api:
    """CoreV1 calls on raw JSON; also answers the planner's lookups."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self._tokens: dict[tuple[str, str, str], tuple[float, bytes]] = {}

    def list_pods(self) -> tuple[list[dict[str, Any]], str]:
        body = _json(self.core.list_pod_for_all_namespaces(_preload_content=False))
        items: list[dict[str, Any]] = body.get("items") or []
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge-patch the pod's status; False when the pod is gone."""
        try:
            self.core.patch_namespaced_pod_status(
                name,
                namespace,
                {"status": dict(status)},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        except ApiException as exc:
            if _absent(exc):
                return False
            raise
        return True

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        try:
            obj = self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
        except ApiException as exc:
            if _absent(exc):
                return None
            raise
        return config_map_bytes(_json(obj))

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        try:
            obj = self.core.read_namespaced_secret(name, namespace, _preload_content=False)
        except ApiException as exc:
            if _absent(exc):
                return None
            raise
        return secret_bytes(_json(obj))

    def token(self, namespace: str, service_account: str, audience: str) -> bytes:
        """A TokenRequest for the account when the API serves one, else a fixed token.

        Reused for half its lifetime, as a kubelet does, so refreshing the volume files
        does not mint a token each time.
        """
        key = (namespace, service_account, audience)
        cached = self._tokens.get(key)
        if cached is not None and time.monotonic() - cached[0] < TOKEN_SECONDS / 2:
            return cached[1]
        token = self._request_token(namespace, service_account, audience)
        self._tokens[key] = (time.monotonic(), token)
        return token

    def _request_token(self, namespace: str, service_account: str, audience: str) -> bytes:
        spec = client.V1TokenRequestSpec(
            audiences=[audience] if audience else [], expiration_seconds=TOKEN_SECONDS
        )
        body = client.AuthenticationV1TokenRequest(spec=spec)
        try:
            response = self.core.create_namespaced_service_account_token(
                service_account, namespace, body, _preload_content=False
            )
            token = (_json(response).get("status") or {}).get("token")
        except (ApiException, ValueError, TypeError):
            return FALLBACK_TOKEN
        return str(token).encode() if token else FALLBACK_TOKEN
