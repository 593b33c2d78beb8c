"""Pod spec -> what to write and what to run. Pure: no I/O but the lookups it is given.

Input is a pod in the API's JSON form (camelCase keys, as the render layer produces and
the API serves). Output is a ``PodPlan``: directories, symlinks and files to create under
the pod's directory, and for every container its argv, env and working directory, with
the mount paths rewritten by the rule in ``paths``. ``materialise`` performs the writes.

Volumes land in ``<pod dir>/volumes/<volume name>``. ConfigMap, Secret, projected and
downwardAPI volumes are files written there; emptyDir is an empty directory there;
PVCs and hostPaths are symlinks there to directories shared by every pod of the same
``Layout`` (``<root>/claims/<namespace>/<claim>`` and ``<root>/hostpath/<path>``), so
two pods mounting the same claim see the same files, as on a cluster.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from incluster_operator.local import paths
from incluster_operator.local.errors import PodSpecError
from incluster_operator.local.lookups import Lookups, TokenRequest

#: Env a container inherits from the machine, besides what its spec sets: enough to
#: find ``python`` and keep the locale, nothing that could leak the user's credentials.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")

_LABEL_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def inherited_env() -> dict[str, str]:
    """``INHERITED_ENV`` from this process, with this Python's directory first on PATH.

    A container's ``python`` then is the interpreter running the runner, the one with
    the incluster SDK installed, even when its virtualenv is not activated.
    """
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(
        [bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)]
    )
    return env


@dataclass(frozen=True)
class Layout:
    """Where a runner keeps pod directories and shared volumes.

    ``host_paths`` maps a hostPath (and everything under it) to a real local directory;
    any other hostPath lives under ``<root>/hostpath/``, never at the real path on this
    machine, so a pod spec cannot reach the user's files unless the runner says so.
    """

    root: Path
    host_paths: Mapping[str, Path] = field(default_factory=dict)

    def pod_dir(self, namespace: str, name: str, uid: str = "") -> Path:
        """``<root>/pods/<namespace>/<name>[-<uid prefix>]``: a recreated pod gets a new one."""
        ns = paths.dns_label(namespace, "metadata.namespace")
        pod = paths.dns_subdomain(name, "metadata.name")
        suffix = re.sub(r"[^a-z0-9]", "", uid.lower())[:8]
        return self.root / "pods" / ns / (f"{pod}-{suffix}" if suffix else pod)

    def claim_dir(self, namespace: str, claim: str) -> Path:
        ns = paths.dns_label(namespace, "metadata.namespace")
        return self.root / "claims" / ns / paths.dns_subdomain(claim, "claimName")

    def host_dir(self, host_path: str, field_name: str) -> Path:
        absolute = PurePosixPath(paths.mount_path(host_path, field_name))
        for prefix in sorted(self.host_paths, key=len, reverse=True):
            if absolute == PurePosixPath(prefix) or absolute.is_relative_to(prefix):
                return paths.under(self.host_paths[prefix], absolute.relative_to(prefix))
        return paths.under(self.root / "hostpath", absolute.relative_to("/"))


@dataclass(frozen=True)
class Node:
    """Facts a kubelet would know about the pod's placement."""

    pod_ip: str = "127.0.0.1"
    host_ip: str = "127.0.0.1"
    node_name: str = "local"


@dataclass(frozen=True)
class FileToWrite:
    path: Path
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path | None
    log_path: Path


@dataclass(frozen=True)
class PodPlan:
    namespace: str
    name: str
    pod_dir: Path
    directories: tuple[Path, ...]
    links: tuple[tuple[Path, Path], ...]  # (link, target)
    #: ``subPath`` targets inside directory volumes; created after the links.
    subdirectories: tuple[Path, ...]
    files: tuple[FileToWrite, ...]
    init_containers: tuple[ContainerPlan, ...]
    containers: tuple[ContainerPlan, ...]
    restart_policy: str = "Always"
    grace_seconds: float = 30.0
    mounts: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pod:
    """The parts of the pod the field resolvers need."""

    meta: Mapping[str, Any]
    spec: Mapping[str, Any]
    node: Node


def _field_value(pod: _Pod, field_path: object, where: str) -> str:
    """A downward-API ``fieldPath`` -> its value, as a kubelet would render it."""
    meta = pod.meta
    simple: dict[str, object] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "metadata.generateName": meta.get("generateName", ""),
        "status.podIP": pod.node.pod_ip,
        "status.podIPs": pod.node.pod_ip,
        "status.hostIP": pod.node.host_ip,
        "status.hostIPs": pod.node.host_ip,
        "spec.nodeName": pod.node.node_name,
        "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
    }
    if isinstance(field_path, str) and field_path in simple:
        return str(simple[field_path])
    if field_path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(str(field_path).split(".")[1]) or {}
        return "".join(f'{k}="{v}"\n' for k, v in sorted(items.items()))
    match = _LABEL_FIELD.match(field_path) if isinstance(field_path, str) else None
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise PodSpecError(
        f"{where}.fieldRef.fieldPath",
        f"{field_path!r} is not supported locally; use one of {sorted(simple)}, "
        "metadata.labels['k'] or metadata.annotations['k']",
    )


def _ref(
    lookups: Lookups, kind: str, namespace: str, ref: Mapping[str, Any], where: str
) -> Mapping[str, bytes] | None:
    """Fetch a ConfigMap/Secret; None if absent and optional, retriable error otherwise."""
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        raise PodSpecError(f"{where}.name", "is required")
    found = (
        lookups.config_map(namespace, name)
        if kind == "ConfigMap"
        else lookups.secret(namespace, name)
    )
    if found is None and not ref.get("optional", False):
        raise PodSpecError(where, f"{kind} {namespace}/{name} not found", retriable=True)
    return found


def _text(value: bytes, where: str) -> str:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise PodSpecError(where, "is not UTF-8 text without NUL bytes, so it cannot be env")
    return text


def expand(value: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion, step for step (``third_party/forked/golang/expansion``).

    ``$$`` is one ``$``; ``$(NAME)`` is NAME's value when NAME is defined, else stays as it
    is; an unclosed ``$(`` and a ``$`` before any other character stay too, and a final
    ``$`` stays. Whatever the value holds, the runners give the process what a kubelet
    would, so a value the operator escaped (``$`` -> ``$$``) arrives unchanged.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(value):
        if value[cursor] == "$" and cursor + 1 < len(value):
            out.append(value[checkpoint:cursor])
            following = value[cursor + 1]
            if following == "$":
                out.append("$")
                advance = 1
            elif following == "(":
                closer = value.find(")", cursor + 2)
                if closer == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = value[cursor + 2 : closer]
                    out.append(env.get(name, f"$({name})"))
                    advance = closer - cursor
            else:
                out.append("$" + following)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(value[checkpoint:])
    return "".join(out)


def container_env(
    pod: _Pod,
    container: Mapping[str, Any],
    lookups: Lookups,
    base: Mapping[str, str],
    where: str,
) -> dict[str, str]:
    """envFrom first, then env in order (later wins), each value ``$(VAR)``-expanded."""
    namespace = str(pod.meta.get("namespace", "default"))
    env = dict(base)
    for i, source in enumerate(container.get("envFrom") or []):
        prefix = str(source.get("prefix", ""))
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                data = _ref(lookups, kind, namespace, source[key], f"{where}.envFrom[{i}].{key}")
                for k, v in (data or {}).items():
                    env[prefix + k] = _text(v, f"{where}.envFrom[{i}] key {k!r}")
    for i, var in enumerate(container.get("env") or []):
        at = f"{where}.env[{i}]"
        name = var.get("name")
        if not isinstance(name, str) or not name:
            raise PodSpecError(f"{at}.name", "is required")
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_value(pod, source["fieldRef"].get("fieldPath"), f"{at}.valueFrom")
            continue
        value: str | None = None
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in source:
                ref = source[key]
                data = _ref(lookups, kind, namespace, ref, f"{at}.valueFrom.{key}")
                if data is None:
                    break
                if ref.get("key") not in data:
                    if ref.get("optional", False):
                        break
                    raise PodSpecError(
                        f"{at}.valueFrom.{key}.key",
                        f"{kind} {namespace}/{ref.get('name')} has no key {ref.get('key')!r}",
                        retriable=True,
                    )
                value = _text(data[ref["key"]], f"{at}.valueFrom.{key}")
                break
        else:
            raise PodSpecError(
                f"{at}.valueFrom",
                "only fieldRef, configMapKeyRef and secretKeyRef are supported locally",
            )
        if value is not None:
            env[name] = value
    return env


def _keyed_files(
    data: Mapping[str, bytes] | None,
    items: Sequence[Mapping[str, Any]] | None,
    mode: int,
    where: str,
    optional: bool,
) -> list[tuple[PurePosixPath, bytes, int]]:
    """A ConfigMap/Secret projected into files: all keys, or the listed items."""
    if data is None:
        return []
    if not items:
        return [(PurePosixPath(paths.data_key(k, where)), v, mode) for k, v in sorted(data.items())]
    out = []
    for i, item in enumerate(items):
        key = str(item.get("key"))
        if key not in data:
            if optional:
                continue
            raise PodSpecError(f"{where}.items[{i}].key", f"key {key!r} not found", retriable=True)
        path = paths.relative_path(item.get("path"), f"{where}.items[{i}].path")
        out.append((path, data[key], int(item.get("mode", mode))))
    return out


def _downward_files(
    pod: _Pod, items: Sequence[Mapping[str, Any]] | None, mode: int, where: str
) -> list[tuple[PurePosixPath, bytes, int]]:
    out = []
    for i, item in enumerate(items or []):
        at = f"{where}.items[{i}]"
        path = paths.relative_path(item.get("path"), f"{at}.path")
        if "fieldRef" not in item:
            raise PodSpecError(at, "only fieldRef items are supported locally")
        value = _field_value(pod, item["fieldRef"].get("fieldPath"), at)
        out.append((path, value.encode(), int(item.get("mode", mode))))
    return out


def _volume_files(
    pod: _Pod, volume: Mapping[str, Any], lookups: Lookups, where: str
) -> list[tuple[PurePosixPath, bytes, int]] | None:
    """Files of a file-backed volume, or None for a directory-backed one."""
    namespace = str(pod.meta.get("namespace", "default"))
    if "configMap" in volume:
        src = volume["configMap"]
        data = _ref(lookups, "ConfigMap", namespace, src, f"{where}.configMap")
        mode = int(src.get("defaultMode", 0o644))
        return _keyed_files(
            data, src.get("items"), mode, f"{where}.configMap", src.get("optional", False)
        )
    if "secret" in volume:
        src = volume["secret"]
        ref = {"name": src.get("secretName"), "optional": src.get("optional", False)}
        data = _ref(lookups, "Secret", namespace, ref, f"{where}.secret")
        mode = int(src.get("defaultMode", 0o600))
        return _keyed_files(data, src.get("items"), mode, f"{where}.secret", ref["optional"])
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        mode = int(src.get("defaultMode", 0o644))
        return _downward_files(pod, src.get("items"), mode, f"{where}.downwardAPI")
    if "projected" in volume:
        src = volume["projected"]
        mode = int(src.get("defaultMode", 0o644))
        files: list[tuple[PurePosixPath, bytes, int]] = []
        for i, source in enumerate(src.get("sources") or []):
            at = f"{where}.projected.sources[{i}]"
            if "configMap" in source:
                ref = source["configMap"]
                data = _ref(lookups, "ConfigMap", namespace, ref, f"{at}.configMap")
                files += _keyed_files(
                    data, ref.get("items"), mode, f"{at}.configMap", ref.get("optional", False)
                )
            elif "secret" in source:
                ref = source["secret"]
                data = _ref(lookups, "Secret", namespace, ref, f"{at}.secret")
                secret_mode = int(src.get("defaultMode", 0o600))
                files += _keyed_files(
                    data, ref.get("items"), secret_mode, f"{at}.secret", ref.get("optional", False)
                )
            elif "downwardAPI" in source:
                files += _downward_files(
                    pod, source["downwardAPI"].get("items"), mode, f"{at}.downwardAPI"
                )
            elif "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                path = paths.relative_path(token.get("path"), f"{at}.serviceAccountToken.path")
                account = str(pod.spec.get("serviceAccountName", "default"))
                audience = str(token.get("audience", ""))
                request = TokenRequest(
                    namespace,
                    account,
                    audience,
                    pod_name=str(pod.meta.get("name", "")),
                    pod_uid=str(pod.meta.get("uid", "")),
                    expiration_seconds=int(token.get("expirationSeconds") or 3600),
                )
                files.append((path, lookups.token(request), 0o600))
            else:
                raise PodSpecError(
                    at,
                    "only configMap, secret, downwardAPI and serviceAccountToken sources "
                    "are supported locally",
                )
        return files
    return None


def _volume_dirs(
    layout: Layout, namespace: str, volume: Mapping[str, Any], where: str
) -> Path | None:
    """The shared directory a PVC or hostPath volume links to; None for emptyDir."""
    if "emptyDir" in volume:
        return None
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"].get("claimName")
        return layout.claim_dir(
            namespace, paths.dns_subdomain(claim, f"{where}.persistentVolumeClaim.claimName")
        )
    if "hostPath" in volume:
        return layout.host_dir(volume["hostPath"].get("path"), f"{where}.hostPath.path")
    kinds = "configMap, secret, projected, downwardAPI, emptyDir, hostPath, persistentVolumeClaim"
    raise PodSpecError(where, f"unsupported volume type; supported locally: {kinds}")


def _containers(
    pod: _Pod,
    key: str,
    volume_dirs: Mapping[str, Path],
    lookups: Lookups,
    base: Mapping[str, str],
    logs: Path,
    workdir: Path | None,
    directory_volumes: set[str],
    subdirectories: list[Path],
) -> tuple[tuple[ContainerPlan, ...], dict[str, dict[str, Path]]]:
    """Plan each container; a ``subPath`` into a directory volume is created, as a kubelet does."""
    plans = []
    all_mounts: dict[str, dict[str, Path]] = {}
    for i, container in enumerate(pod.spec.get(key) or []):
        where = f"spec.{key}[{i}]"
        name = paths.dns_label(container.get("name"), f"{where}.name")
        mounts: dict[str, Path] = {}
        for j, mount in enumerate(container.get("volumeMounts") or []):
            at = f"{where}.volumeMounts[{j}]"
            volume = mount.get("name")
            if volume not in volume_dirs:
                raise PodSpecError(f"{at}.name", f"no volume named {volume!r} in spec.volumes")
            target = volume_dirs[volume]
            if mount.get("subPath"):
                target = paths.under(target, paths.relative_path(mount["subPath"], f"{at}.subPath"))
                if volume in directory_volumes:
                    subdirectories.append(target)
            mounts[paths.mount_path(mount.get("mountPath"), f"{at}.mountPath")] = target
        pattern = paths.remapper(mounts)
        env = container_env(pod, container, lookups, base, where)
        env = {k: paths.remap(v, mounts, pattern) for k, v in env.items()}
        command = [str(c) for c in container.get("command") or []]
        if not command:
            raise PodSpecError(
                f"{where}.command",
                "is required locally: images are not run, so their entrypoint is unknown",
            )
        argv = [*command, *(str(a) for a in container.get("args") or [])]
        argv = [paths.remap(expand(a, env), mounts, pattern) for a in argv]
        working_dir = container.get("workingDir")
        cwd = Path(paths.remap(str(working_dir), mounts, pattern)) if working_dir else workdir
        plans.append(ContainerPlan(name, tuple(argv), env, cwd, logs / f"{name}.log"))
        all_mounts[name] = mounts
    return tuple(plans), all_mounts


def plan_pod(
    pod: Mapping[str, Any],
    lookups: Lookups,
    layout: Layout,
    *,
    node: Node = Node(),
    base_env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> PodPlan:
    """Everything needed to run ``pod`` locally; raises PodSpecError naming the field.

    ``base_env`` is what every container starts from (default: ``INHERITED_ENV`` from
    this process); ``HOSTNAME`` is then set as a kubelet would, and the spec's env wins.
    ``workdir`` is the working directory of containers without ``workingDir`` (the
    image's WORKDIR has no local equivalent); None keeps the runner's own.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace = paths.dns_label(meta.get("namespace", "default"), "metadata.namespace")
    name = paths.dns_subdomain(meta.get("name"), "metadata.name")
    view = _Pod(meta, spec, node)
    pod_dir = layout.pod_dir(namespace, name, str(meta.get("uid", "")))
    volumes_dir = pod_dir / "volumes"

    directories: list[Path] = [pod_dir / "logs", pod_dir / "tmp", volumes_dir]
    links: list[tuple[Path, Path]] = []
    files: list[FileToWrite] = []
    volume_dirs: dict[str, Path] = {}
    dir_volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        where = f"spec.volumes[{i}]"
        vname = paths.dns_label(volume.get("name"), f"{where}.name")
        if vname in volume_dirs:
            raise PodSpecError(f"{where}.name", f"volume {vname!r} is declared twice")
        local = volumes_dir / vname
        volume_dirs[vname] = local
        projected = _volume_files(view, volume, lookups, where)
        if projected is not None:
            directories.append(local)
            files += [FileToWrite(paths.under(local, p), c, m) for p, c, m in projected]
            continue
        dir_volumes.add(vname)
        shared = _volume_dirs(layout, namespace, volume, where)
        if shared is None:
            directories.append(local)
        else:
            directories.append(shared)
            links.append((local, shared))
            # Paths in env and argv name the shared directory itself, not the link: what a
            # replica prints (get_outputs_path()) is then a path the user can open.
            volume_dirs[vname] = shared

    base = dict(base_env if base_env is not None else inherited_env())
    base.setdefault("HOME", str(pod_dir / "tmp"))
    base["TMPDIR"] = str(pod_dir / "tmp")
    base["HOSTNAME"] = str(spec.get("hostname") or name)
    logs = pod_dir / "logs"
    subdirectories: list[Path] = []
    inits, init_mounts = _containers(
        view,
        "initContainers",
        volume_dirs,
        lookups,
        base,
        logs,
        workdir,
        dir_volumes,
        subdirectories,
    )
    mains, main_mounts = _containers(
        view, "containers", volume_dirs, lookups, base, logs, workdir, dir_volumes, subdirectories
    )
    if not mains:
        raise PodSpecError("spec.containers", "a pod needs at least one container")
    names = [c.name for c in (*inits, *mains)]
    if len(set(names)) != len(names):
        raise PodSpecError("spec.containers", f"container names must be unique, got {names}")
    return PodPlan(
        namespace=namespace,
        name=name,
        pod_dir=pod_dir,
        directories=tuple(directories),
        links=tuple(links),
        subdirectories=tuple(dict.fromkeys(subdirectories)),
        files=tuple(files),
        init_containers=inits,
        containers=mains,
        restart_policy=str(spec.get("restartPolicy", "Always")),
        grace_seconds=float(spec.get("terminationGracePeriodSeconds", 30)),
        mounts={**init_mounts, **main_mounts},
    )


def _write(f: FileToWrite) -> None:
    """Write one file atomically (temp file + rename): a reader sees old or new, never half."""
    f.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.path.with_name(f".{f.path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
    try:
        view = memoryview(f.content)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, f.mode)
    finally:
        os.close(fd)
    os.replace(tmp, f.path)


def materialise(plan: PodPlan) -> None:
    """Create the plan's directories, links and files."""
    for directory in plan.directories:
        directory.mkdir(parents=True, exist_ok=True)
    for link, target in plan.links:
        if link.is_symlink() or link.exists():
            continue
        link.symlink_to(target, target_is_directory=True)
    for directory in plan.subdirectories:
        directory.mkdir(parents=True, exist_ok=True)
    for f in plan.files:
        _write(f)


def refresh_files(plan: PodPlan) -> list[Path]:
    """Rewrite the files whose content changed (a ConfigMap edited, a token refreshed).

    A kubelet keeps ConfigMap, Secret and projected volumes up to date while the pod
    runs; the SDK re-reads a file when it changes (the API token most of all). Unchanged
    files are left alone, so their mtime only moves when their content does.
    """
    changed = []
    for f in plan.files:
        try:
            same = f.path.read_bytes() == f.content
        except FileNotFoundError:
            same = False
        if not same:
            _write(f)
            changed.append(f.path)
    return changed
