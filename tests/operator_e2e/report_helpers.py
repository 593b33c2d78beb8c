"""A pod's view for report API tests: its projected token and context, as a kubelet makes them.

The test plays the kubelet: it mints the pod's projected token through TokenRequest,
bound to the pod, for the audience and lifetime the pod spec asks (what a kubelet does
for a ``serviceAccountToken`` source), and writes the context directory from the
context ConfigMap. Works the same on the emulator and on a real API server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes
from incluster import contract
from incluster_operator.api import names
from operator_e2e_harness import Kube


def pod_token(kube: Kube, pod_name: str) -> str:
    """The token a kubelet would project into ``pod_name`` (its own ServiceAccount)."""
    pod = kube.core.read_namespaced_pod(pod_name, kube.namespace)
    context = next(v for v in pod.spec.volumes if v.name == names.VOLUME_CONTEXT)
    source = next(
        s.service_account_token for s in context.projected.sources if s.service_account_token
    )
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(
            audiences=[source.audience],
            expiration_seconds=source.expiration_seconds,
            bound_object_ref=kubernetes.client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=pod_name, uid=pod.metadata.uid
            ),
        )
    )
    account = pod.spec.service_account_name or "default"
    granted = kube.core.create_namespaced_service_account_token(account, kube.namespace, request)
    token: str = granted.status.token
    return token


def pod_context(kube: Kube, experiment: str, pod_name: str, directory: Path) -> Path:
    """The context directory of ``pod_name``: the ConfigMap's files and its token."""
    config_map = kube.core.read_namespaced_config_map(
        names.context_configmap_name(experiment), kube.namespace
    )
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in (config_map.data or {}).items():
        (directory / key).write_text(value)
    (directory / contract.DIR_TOKEN).mkdir(exist_ok=True)
    (directory / contract.DIR_TOKEN / contract.FILE_TOKEN).write_text(pod_token(kube, pod_name))
    return directory


def report_url(directory: Path) -> str:
    document: dict[str, Any] = json.loads((directory / contract.FILE_CONTEXT).read_text())
    url: str = document[contract.KEY_REPORT_URL]
    return url
