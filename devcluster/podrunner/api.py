"""The few API calls the pod runner makes, on raw JSON (no model round-trip).

Raw JSON because the runner must pass every field of a pod through to the planner
unchanged, including ones the client's models do not know.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from incluster_operator.api.times import format_time
from incluster_operator.local.lookups import TokenRequest, config_map_bytes, secret_bytes
from kubernetes import client
from kubernetes.client.exceptions import ApiException

#: The API server's floor for a TokenRequest's expirationSeconds.
MIN_TOKEN_SECONDS = 600
#: What a projected serviceAccountToken gets when the API cannot mint one.
FALLBACK_TOKEN = b"devcluster-token-without-api-access"


_NODE_INFO = {
    "architecture": platform.machine(),
    "operatingSystem": "linux",
    "osImage": "devcluster pod runner",
    "kernelVersion": platform.release(),
    "kubeletVersion": "devcluster",
    "kubeProxyVersion": "",
    "containerRuntimeVersion": "process://local",
    "machineID": "",
    "systemUUID": "",
    "bootID": "",
}


def _json(response: Any) -> Any:
    return json.loads(response.data)


def _absent(exc: ApiException) -> bool:
    return bool(exc.status == 404)


class Api:
    """CoreV1 calls on raw JSON; also answers the planner's lookups."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self._tokens: dict[tuple[str, str, str, str], tuple[float, bytes]] = {}

    def list_pods(self, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        if namespace is None:
            response = self.core.list_pod_for_all_namespaces(_preload_content=False)
        else:
            response = self.core.list_namespaced_pod(namespace, _preload_content=False)
        body = _json(response)
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

    def token(self, request: TokenRequest) -> bytes:
        """A TokenRequest bound to the pod when the API serves one, else a fixed token.

        Reused until 80% of its lifetime, as a kubelet does, so refreshing the volume files
        does not mint a token each time.
        """
        key = (request.namespace, request.service_account, request.audience, request.pod_uid)
        cached = self._tokens.get(key)
        lifetime = max(request.expiration_seconds, MIN_TOKEN_SECONDS)
        if cached is not None and time.monotonic() - cached[0] < lifetime * 0.8:
            return cached[1]
        token = self._request_token(request, lifetime)
        self._tokens[key] = (time.monotonic(), token)
        return token

    def _request_token(self, request: TokenRequest, lifetime: int) -> bytes:
        bound = None
        if request.pod_name and request.pod_uid:
            bound = client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=request.pod_name, uid=request.pod_uid
            )
        spec = client.V1TokenRequestSpec(
            audiences=[request.audience] if request.audience else [],
            expiration_seconds=lifetime,
            bound_object_ref=bound,
        )
        body = client.AuthenticationV1TokenRequest(spec=spec)
        try:
            response = self.core.create_namespaced_service_account_token(
                request.service_account, request.namespace, body, _preload_content=False
            )
            token = (_json(response).get("status") or {}).get("token")
        except (ApiException, ValueError, TypeError):
            return FALLBACK_TOKEN
        return str(token).encode() if token else FALLBACK_TOKEN

    # -- what a node does on a real API server -----------------------------------------

    def register_node(self, name: str, address: str, kubelet_port: int = 0) -> None:
        """Create (or take over) the Node and report it Ready, as a kubelet registers."""
        node: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        }
        try:
            self.core.create_node(node, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
        now = format_time(datetime.now(UTC))
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
        status: dict[str, Any] = {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "devcluster pod runner is running pods as local processes",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "nodeInfo": _NODE_INFO,
        }
        if kubelet_port:
            status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": kubelet_port}}
        self.core.patch_node_status(
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )

    def delete_node(self, name: str) -> None:
        try:
            self.core.delete_node(name, _preload_content=False)
        except ApiException as exc:
            if not _absent(exc):
                raise

    def bind(self, namespace: str, name: str, uid: str, node: str) -> bool:
        """Place the pod on ``node`` (what kube-scheduler does); False if it is gone."""
        body: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            self.core.create_namespaced_pod_binding(name, namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status in (404, 409):  # gone, or bound by someone else meanwhile
                return False
            raise
        return True

    def finish_deletion(self, namespace: str, name: str, uid: str) -> None:
        """Remove a terminating pod whose processes have stopped, as a kubelet does.

        A bound pod's graceful delete only marks it; the node confirms with a zero-grace
        delete, guarded by the uid so a recreated pod of the same name is untouched.
        """
        body: Any = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.core.delete_namespaced_pod(name, namespace, body=body, _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
