"""Safe path components and the mount-path remapping rule.

Names in a pod spec (namespace, pod, volume, container, ConfigMap keys, item paths) are
untrusted input: they become paths only after these checks, so a spec can never write
outside its pod directory.

The remapping rule: inside one container, every ``volumeMounts[].mountPath`` M stands for
the directory (or file) D where the volume was materialised. In env values, ``command``,
``args`` and ``workingDir``, an occurrence of M is replaced by D when it is a whole path
prefix: it starts the string or follows a delimiter (whitespace, ``= : , ; " ' ( [ {``),
and it ends the string, is followed by ``/`` or by a delimiter. The longest mount path
wins, so a nested mount (``/var/run/incluster/token`` inside ``/var/run/incluster``) maps
to its own volume. File contents are never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from incluster_operator.local.errors import PodSpecError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DELIMITERS = "\\s=:,;\"'(\\[{)\\]}"


def dns_label(value: object, field: str) -> str:
    """A DNS-1123 label (volume, container and namespace names): safe as a path component."""
    if not isinstance(value, str) or not _DNS_LABEL.match(value):
        raise PodSpecError(
            field, f"{value!r} is not a DNS-1123 label (lowercase letters, digits, '-', <= 63)"
        )
    return value


def dns_subdomain(value: object, field: str) -> str:
    """A DNS-1123 subdomain (pod names): dots allowed, but no empty label, so never '..'."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise PodSpecError(
            field, f"{value!r} is not a DNS-1123 subdomain (lowercase letters, digits, '-', '.')"
        )
    return value


def data_key(value: object, field: str) -> str:
    """A ConfigMap/Secret key, the file name it gets when a volume projects it."""
    if (
        not isinstance(value, str)
        or not _KEY.match(value)
        or value in (".", "..")
        or value.startswith("..")
    ):
        raise PodSpecError(field, f"{value!r} is not a valid key (letters, digits, '-', '_', '.')")
    return value


def relative_path(value: object, field: str) -> PurePosixPath:
    """An item ``path`` or ``subPath``: relative, without '..', so it stays inside its volume."""
    if not isinstance(value, str) or not value:
        raise PodSpecError(field, f"{value!r} must be a non-empty relative path")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\0" in value:
        raise PodSpecError(field, f"{value!r} must be relative and must not contain '..'")
    return path


def mount_path(value: object, field: str) -> str:
    """An absolute mount path, normalised (no trailing slash); '/' itself is refused."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise PodSpecError(field, f"{value!r} must be an absolute path")
    normal = str(PurePosixPath(value))
    if normal == "/" or ".." in PurePosixPath(normal).parts:
        raise PodSpecError(field, f"{value!r} cannot be mounted locally: use a sub-directory")
    return normal


def under(root: Path, relative: PurePosixPath) -> Path:
    """``root / relative`` for a path already checked by ``relative_path``."""
    return root.joinpath(*relative.parts)


def remapper(mounts: Mapping[str, Path]) -> re.Pattern[str] | None:
    """Compile the rule for one container's mounts (mount path -> materialised path)."""
    if not mounts:
        return None
    alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    return re.compile(f"(?<![^{_DELIMITERS}])({alternatives})(?=$|[/{_DELIMITERS}])")


def remap(value: str, mounts: Mapping[str, Path], pattern: re.Pattern[str] | None) -> str:
    """Apply the remapping rule (module docstring) to one string."""
    if pattern is None:
        return value
    return pattern.sub(lambda m: str(mounts[m.group(1)]), value)
