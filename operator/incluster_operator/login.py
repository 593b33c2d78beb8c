"""Where the operator logs in: one ``kubernetes`` configuration, and kopf's credentials from it.

Why apart from the handlers: importing ``handlers`` registers them in kopf's default
registry, while tests and the dev cluster log their own registries in the same way; this
module only translates, so both share one translation.
"""

from __future__ import annotations

import kopf
from kubernetes import client as k8s_client

from incluster_operator import k8s


def configuration(memo: kopf.Memo) -> k8s_client.Configuration:
    """The embedding caller's ``memo.configuration`` (tests, the dev cluster), else
    in-cluster credentials or ``KUBECONFIG`` (``k8s.load_configuration``)."""
    configured = memo.get("configuration")
    return configured if configured is not None else k8s.load_configuration()


def connection_info(
    configuration: k8s_client.Configuration, default_namespace: str | None = None
) -> kopf.ConnectionInfo:
    """kopf logs in exactly where the ``kubernetes`` client goes (same host, CA, token)."""
    # kubernetes >= 26 keeps a kubeconfig's or a pod's token under "BearerToken" (with its
    # "Bearer " prefix); older ones under "authorization". Missing it logs in anonymously.
    keys = configuration.api_key or {}
    authorization = keys.get("BearerToken") or keys.get("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme or None,
        token=token or None,
        default_namespace=default_namespace,
    )
