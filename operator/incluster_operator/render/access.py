"""Pure: the objects that give an Experiment's pods a narrowly scoped API identity.

Why a per-experiment identity instead of the pod's own service account: the pod keeps the
user's ``serviceAccountName`` (cloud IAM for buckets and registries), and that account's
rights are the user's business. The SDK needs exactly one more thing, to read and patch its
own Experiment, so each Experiment gets a ServiceAccount whose Role allows only that (plus
``get`` on the experiments it reads outputs from). Its token is minted by the operator
through the TokenRequest API, bound to a per-experiment Secret (deleting the Secret revokes
every token bound to it), and projected into the context directory as a file beside the
cluster CA (``with_token_sources`` adds them to the pod's projected context volume): never
an env var, which would leak into ``kubectl describe``, crash reports and child processes.

Everything here returns new dicts in Kubernetes' JSON shape; ``desired`` adds the owner
references, the reconcile round creates them and ``incluster_operator.tokens`` fills the
Secret.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from incluster import contract

from incluster_operator.api import names
from incluster_operator.api.times import format_time

GROUP: Final = contract.API_GROUP
PLURAL: Final = contract.PLURAL
RBAC_GROUP: Final = "rbac.authorization.k8s.io"
RBAC_VERSION: Final = RBAC_GROUP + "/v1"

#: The Secret's data key holding the bearer token (projected as ``token/token``).
SECRET_KEY_TOKEN: Final = "token"  # noqa: S105 - a key name
#: When the stored token was minted and when it expires (RFC 3339, UTC): the refresh timer
#: decides from these without decoding the token.
ANNOTATION_ISSUED_AT: Final = "incluster.dev/token-issued-at"
ANNOTATION_EXPIRES_AT: Final = "incluster.dev/token-expires-at"

#: The ConfigMap Kubernetes publishes in every namespace with the API server's CA bundle.
ROOT_CA_CONFIGMAP: Final = "kube-root-ca.crt"
ROOT_CA_KEY: Final = "ca.crt"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class AccessNames:
    """Names of an experiment's access objects, derived from the experiment's name."""

    service_account: str
    role: str
    role_binding: str
    secret: str


def access_names(experiment: str) -> AccessNames:
    """Derive the names; the experiment name must be a DNS label (63 chars at most).

    All four share one name (they are different kinds) except the Secret, whose suffix makes
    it obvious in ``kubectl get secrets`` what it holds.
    """
    _check_label("experiment name", experiment)
    base = f"{experiment}-incluster"
    return AccessNames(service_account=base, role=base, role_binding=base, secret=f"{base}-token")


def _check_label(what: str, name: str) -> None:
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise ValueError(
            f"{what} {name!r} is not a DNS label: use at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )


def _metadata(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    _check_label("namespace", namespace)
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def service_account(
    experiment: str, namespace: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The experiment's ServiceAccount; no pod runs as it, so nothing is automounted."""
    named = access_names(experiment)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(named.service_account, namespace, labels or {}),
        "automountServiceAccountToken": False,
    }


def role_rules(experiment: str, outputs_refs: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The complete rule list: own experiment get/patch, referenced experiments get.

    ``resourceNames`` pins every rule to named objects: no list, watch, create or delete,
    nothing on other kinds, nothing on experiments that are not named.
    """
    _check_label("experiment name", experiment)
    refs = sorted(set(outputs_refs) - {experiment})
    for ref in refs:
        if not isinstance(ref, str) or not _DNS_SUBDOMAIN.match(ref):
            raise ValueError(
                f"spec.outputsRefs entry {ref!r} is not an experiment name: use the "
                "metadata.name of an Experiment in the same namespace"
            )
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": [GROUP],
            "resources": [PLURAL, f"{PLURAL}/status"],
            "resourceNames": [experiment],
            "verbs": ["get", "patch"],
        }
    ]
    if refs:
        rules.append(
            {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": refs, "verbs": ["get"]}
        )
    return rules


def role(
    experiment: str,
    namespace: str,
    outputs_refs: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The experiment's Role (namespaced: it can never reach another namespace)."""
    named = access_names(experiment)
    return {
        "apiVersion": RBAC_VERSION,
        "kind": "Role",
        "metadata": _metadata(named.role, namespace, labels or {}),
        "rules": role_rules(experiment, outputs_refs),
    }


def role_binding(
    experiment: str, namespace: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Binds the Role to the experiment's ServiceAccount only; deleted at revocation."""
    named = access_names(experiment)
    return {
        "apiVersion": RBAC_VERSION,
        "kind": "RoleBinding",
        "metadata": _metadata(named.role_binding, namespace, labels or {}),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": named.role},
        "subjects": [
            {"kind": "ServiceAccount", "name": named.service_account, "namespace": namespace}
        ],
    }


def token_secret(
    experiment: str, namespace: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Secret the token is bound to; created empty, filled by ``tokens.mint``.

    It must exist before minting, because TokenRequest binds the token to its uid.
    """
    named = access_names(experiment)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(named.secret, namespace, labels or {}),
    }


def access_objects(
    experiment: str,
    namespace: str,
    outputs_refs: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """All four objects in creation order (the Secret must exist before minting)."""
    return [
        service_account(experiment, namespace, labels),
        role(experiment, namespace, outputs_refs, labels),
        role_binding(experiment, namespace, labels),
        token_secret(experiment, namespace, labels),
    ]


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment!r} must be timezone-aware")
    return format_time(moment)


def token_secret_patch(token: str, issued_at: datetime, expires_at: datetime) -> dict[str, Any]:
    """A merge patch that stores a freshly minted token and its lifetime in the Secret."""
    if not token:
        raise ValueError("the TokenRequest returned an empty token")
    return {
        "metadata": {
            "annotations": {
                ANNOTATION_ISSUED_AT: _rfc3339(issued_at),
                ANNOTATION_EXPIRES_AT: _rfc3339(expires_at),
            }
        },
        "data": {SECRET_KEY_TOKEN: base64.b64encode(token.encode()).decode("ascii")},
    }


def token_sources(experiment: str) -> list[dict[str, Any]]:
    """Projected-volume sources: the token and the CA, as ``DIR_TOKEN/FILE_TOKEN`` and
    ``DIR_TOKEN/FILE_CA`` of the projected context volume (see ``with_token_sources``).

    Neither source is optional: a pod must not start without its token.
    """
    named = access_names(experiment)
    return [
        {
            "secret": {
                "name": named.secret,
                "items": [
                    {"key": SECRET_KEY_TOKEN, "path": f"{contract.DIR_TOKEN}/{contract.FILE_TOKEN}"}
                ],
            }
        },
        {
            "configMap": {
                "name": ROOT_CA_CONFIGMAP,
                "items": [{"key": ROOT_CA_KEY, "path": f"{contract.DIR_TOKEN}/{contract.FILE_CA}"}],
            }
        },
    ]


def with_token_sources(
    pod: Mapping[str, Any], experiment: str, volume: str = names.VOLUME_CONTEXT
) -> dict[str, Any]:
    """A copy of a rendered pod whose projected context volume also carries token and CA.

    The context volume is already mounted read-only in every container (init containers
    too), so the files appear as ``<context dir>/token/token`` and ``.../ca.crt`` with no
    new mount: a nested mount inside a read-only volume would need a mount point the
    kubelet cannot create. Nothing else changes: ``serviceAccountName`` and
    ``automountServiceAccountToken`` stay as the user wrote them, and no env var is added.
    """
    result = copy.deepcopy(dict(pod))
    volumes = (result.get("spec") or {}).get("volumes") or []
    target = next((v for v in volumes if v.get("name") == volume), None)
    if target is None or "projected" not in target:
        raise ValueError(
            f"pod {result.get('metadata', {}).get('name')!r} has no projected volume "
            f"{volume!r} to carry the API token; render the context volume as projected"
        )
    sources = target["projected"].setdefault("sources", [])
    # Keys projected without ``items`` cannot contain '/', so only explicit item paths
    # can land on (or replace) the token directory.
    prefix = contract.DIR_TOKEN
    for source in sources:
        for projection in source.values():
            for item in projection.get("items") or []:
                path = str(item.get("path", "")).strip("/")
                if path == prefix or path.startswith(prefix + "/"):
                    raise ValueError(
                        f"volume {volume!r} already projects {path!r}, where the "
                        "experiment's API token goes"
                    )
    sources.extend(token_sources(experiment))
    return result
