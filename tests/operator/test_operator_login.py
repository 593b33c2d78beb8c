"""kopf logs in with the same credentials as the `kubernetes` client: a token too."""

from __future__ import annotations

from pathlib import Path

import yaml
from incluster_operator import k8s
from incluster_operator.login import connection_info


def test_a_kubeconfig_token_reaches_kopfs_login(tmp_path: Path) -> None:
    # Found on the real API server: a ServiceAccount-token kubeconfig logged kopf in as
    # system:anonymous, because the client keeps the token under "BearerToken".
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    info = connection_info(k8s.load_configuration({"KUBECONFIG": str(kubeconfig)}))
    assert (info.scheme, info.token) == ("Bearer", "secret-token")
    assert info.server == "https://127.0.0.1:6443"
