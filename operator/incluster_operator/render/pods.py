"""One pod per replica: the user's template plus identity, context env and mounts. Pure.

The user's template is never mutated: it is deep-copied, then the operator's parts are
added. Anything the operator adds that the template already sets differently (an env var,
a volume name, a mount path, a label, the hostname) is an ``InvalidSpec`` naming both,
because silently overriding either side breaks someone's program.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from incluster import contract

from incluster_operator.api import names
from incluster_operator.api.models import API_VERSION, KIND
from incluster_operator.api.validation import InvalidSpec
from incluster_operator.render import scheduling
from incluster_operator.render.context import (
    ExperimentMeta,
    Plan,
    data_paths,
    outputs_path,
    outputs_subpath,
    ref_mount_path,
    ref_subpath,
    task_env,
)
from incluster_operator.settings import Settings

_CONTAINER_FIELDS = ("initContainers", "containers")


def owner_reference(meta: ExperimentMeta) -> dict[str, Any]:
    """Makes the Experiment the controller of a child, so deleting it deletes the child."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.name,
        "uid": meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def identity_labels(meta: ExperimentMeta, task_type: str, index: int) -> dict[str, str]:
    """Labels of one replica's pod: the experiment selector plus type and index."""
    return {
        **names.selector(meta.name, meta.uid),
        names.LABEL_REPLICA_TYPE: task_type,
        names.LABEL_REPLICA_INDEX: str(index),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }


def report_token_source(settings: Settings) -> dict[str, Any]:
    """The pod's one credential: a projected token of its own ServiceAccount.

    Its audience is the report API's, so the API server refuses it as a credential; the
    kubelet mints it bound to the pod (it dies with the pod) and rotates it before
    expiry. It is a file in the context directory, never env (env leaks into ``kubectl
    describe``, crash reports and child processes). ``serviceAccountName`` and
    ``automountServiceAccountToken`` stay as the user wrote them.
    """
    return {
        "serviceAccountToken": {
            "audience": settings.report_audience,
            "expirationSeconds": settings.report_token_seconds,
            "path": f"{contract.DIR_TOKEN}/{contract.FILE_TOKEN}",
        }
    }


def escape_env(value: str) -> str:
    """A value the kubelet's ``$(VAR)`` expansion gives back unchanged: ``$`` -> ``$$``.

    The kubelet expands ``$(NAME)`` and ``$$`` in every env value, so a hyperparameter
    ``pa$$word`` or ``$(HOME)`` would reach the process altered; escaped, it arrives as
    written.
    """
    return value.replace("$", "$$")


def _volumes(p: Plan) -> list[dict[str, Any]]:
    """The operator's pod volumes; the same for every pod of the experiment."""
    volumes: list[dict[str, Any]] = [
        {
            # Projected: the context files and the pod's report token share one read-only
            # directory without nesting a mount inside it.
            "name": names.VOLUME_CONTEXT,
            "projected": {
                "sources": [
                    {"configMap": {"name": names.context_configmap_name(p.meta.name)}},
                    report_token_source(p.settings),
                ]
            },
        },
        {"name": names.VOLUME_OUTPUTS, **p.settings.outputs.to_k8s()},
    ]
    for i, store in enumerate(p.spec.data):
        source = p.settings.data_stores[store]  # validate() checked that it exists
        if source.url is None:  # an object-store data set is read by URL, not mounted
            volumes.append({"name": f"{names.VOLUME_DATA_PREFIX}{i}", **source.to_k8s()})
    return volumes


def _mounts(p: Plan) -> list[dict[str, Any]]:
    """The operator's mounts, added to every container: context and refs read-only."""
    mounts: list[dict[str, Any]] = [
        {"name": names.VOLUME_CONTEXT, "mountPath": p.settings.context_dir, "readOnly": True},
        {
            "name": names.VOLUME_OUTPUTS,
            "mountPath": outputs_path(p.spec, p.meta, p.settings),
            # Only this experiment's directory of the store is visible in the pod.
            "subPath": outputs_subpath(p.spec, p.meta),
        },
    ]
    in_object_store = p.settings.outputs_url is not None  # refs are URLs then: no mounts
    for kind, refs in (
        ("experiments", [] if in_object_store else p.spec.outputs_refs.experiments),
        ("jobs", [] if in_object_store else p.spec.outputs_refs.jobs),
    ):
        for ref in refs:
            mounts.append(
                {
                    "name": names.VOLUME_OUTPUTS,
                    "mountPath": ref_mount_path(p.settings, kind, ref),
                    "subPath": ref_subpath(
                        p.spec, p.meta, ref, p.ref_runs.get(ref) if kind == "experiments" else None
                    ),
                    "readOnly": True,
                }
            )
    for i, (store, path) in enumerate(data_paths(p.spec, p.settings).items()):
        if p.settings.data_stores[store].url is None:
            mounts.append(
                {"name": f"{names.VOLUME_DATA_PREFIX}{i}", "mountPath": path, "readOnly": True}
            )
    return mounts


def _inside(path: str, ours: str) -> bool:
    """A user mount at or below one of ours would hide or break it (ours may be read-only).

    Mounting above ours (``/data`` around ``/data/imagenet``) is fine: runtimes mount
    nested paths after their parents.
    """
    return (path.rstrip("/") + "/").startswith(ours.rstrip("/") + "/")


def _container(
    container: Mapping[str, Any],
    where: str,
    env: Sequence[tuple[str, str]],
    mounts: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    out = dict(container)
    user_env = list(container.get("env") or [])
    ours = {name for name, _ in env}
    for i, var in enumerate(user_env):
        if var.get("name") in ours:
            raise InvalidSpec(
                [
                    f"{where}.env[{i}]: {var.get('name')} is set by the operator (the run "
                    "context); remove it or read the value through the incluster SDK"
                ]
            )
    user_mounts = list(container.get("volumeMounts") or [])
    for i, mount in enumerate(user_mounts):
        path = str(mount.get("mountPath", ""))
        for own in mounts:
            if _inside(path, own["mountPath"]):
                raise InvalidSpec(
                    [
                        f"{where}.volumeMounts[{i}]: mountPath {path!r} is at or inside the "
                        f"operator's {own['mountPath']!r}; mount it elsewhere"
                    ]
                )
    # Ours first: the user's env may refer to them as $(INCLUSTER_...).
    out["env"] = [{"name": k, "value": escape_env(v)} for k, v in env] + user_env
    out["volumeMounts"] = [dict(m) for m in mounts] + user_mounts
    return out


def _check_template_spec(pod_spec: Mapping[str, Any], where: str, restart_policy: str) -> None:
    for key in ("hostname", "subdomain"):
        if key in pod_spec:
            raise InvalidSpec(
                [
                    f"{where}.spec.{key}: the operator sets it "
                    "(<experiment>-<type>-<index>); remove it"
                ]
            )
    user_policy = pod_spec.get("restartPolicy")
    if user_policy is not None and user_policy != restart_policy:
        raise InvalidSpec(
            [
                f"{where}.spec.restartPolicy: {user_policy!r} conflicts with the replica's "
                "restartPolicy; set spec.replicas.<type>.restartPolicy instead"
            ]
        )
    reserved = {names.VOLUME_CONTEXT, names.VOLUME_OUTPUTS}
    for i, volume in enumerate(pod_spec.get("volumes") or []):
        name = str(volume.get("name", ""))
        if name in reserved or name.startswith(names.VOLUME_DATA_PREFIX):
            raise InvalidSpec(
                [
                    f"{where}.spec.volumes[{i}]: the name {name!r} is reserved by the "
                    "operator; rename it"
                ]
            )


def render_pod(p: Plan, task_type: str, index: int) -> dict[str, Any]:
    """The pod of replica ``task_type:index``; deterministic for a given plan."""
    replica = p.spec.replicas[task_type]
    where = f"spec.replicas.{task_type}.template"
    template = copy.deepcopy(replica.template)
    metadata = template.get("metadata") or {}
    pod_spec: dict[str, Any] = template.get("spec") or {}
    restart_policy = "OnFailure" if replica.restart_policy == "OnFailure" else "Never"
    _check_template_spec(pod_spec, where, restart_policy)

    labels = identity_labels(p.meta, task_type, index)
    labels[names.LABEL_ATTEMPT] = str(p.attempt)
    user_labels = dict(metadata.get("labels") or {})
    for key, value in user_labels.items():
        if key in labels and labels[key] != value:
            raise InvalidSpec([f"{where}.metadata.labels.{key}: set by the operator; remove it"])
    name = names.pod_name(p.meta.name, task_type, index)

    env = task_env(p, task_type, index)
    mounts = _mounts(p)
    spec_out = dict(pod_spec)
    for field in _CONTAINER_FIELDS:
        if field in pod_spec:
            spec_out[field] = [
                _container(c, f"{where}.spec.{field}[{i}]", env, mounts)
                for i, c in enumerate(pod_spec[field])
            ]
    spec_out["volumes"] = _volumes(p) + list(pod_spec.get("volumes") or [])
    spec_out["hostname"] = name
    spec_out["subdomain"] = names.service_name(p.meta.name)
    spec_out["restartPolicy"] = restart_policy

    pod_metadata: dict[str, Any] = {
        "name": name,
        "namespace": p.meta.namespace,
        "labels": {**user_labels, **labels},
        "ownerReferences": [owner_reference(p.meta)],
    }
    if metadata.get("annotations"):
        pod_metadata["annotations"] = dict(metadata["annotations"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_metadata, "spec": spec_out}
    return scheduling.schedule_pod(p, pod, where)


def replica_keys(p: Plan) -> list[tuple[str, int]]:
    """Every (type, index) of the experiment, in a stable order."""
    return [
        (task_type, i)
        for task_type, replica in sorted(p.spec.replicas.items())
        for i in range(replica.replicas)
    ]
