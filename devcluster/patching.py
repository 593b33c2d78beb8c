"""The three patch formats kube-apiserver accepts, as pure functions over plain dicts.

Each function returns a new document and never mutates its inputs: the emulator keeps every
stored version immutable so that watch events and list responses can share them safely.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# Strategic merge keys of the built-in types (the `patchMergeKey` tags of k8s.io/api), by field
# name. Good enough for the kinds an operator writes: pods, services, configmaps, RBAC.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "ports": "port",
    "readinessGates": "conditionType",
}
# Lists of scalars that strategic merge treats as sets (patchStrategy=merge).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """A patch that cannot apply; `code` is the HTTP status kube-apiserver answers with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON patch path {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], segment: str, *, insert: bool) -> int:
    if segment == "-" and insert:
        return len(container)
    if not segment.isdigit():
        raise PatchError(f"JSON patch list index {segment!r} is not a number")
    index = int(segment)
    if index > len(container) or (index == len(container) and not insert):
        raise PatchError(f"JSON patch list index {index} is out of range")
    return index


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise PatchError(f"JSON patch path segment {part!r} does not exist")
            doc = doc[part]
        elif isinstance(doc, list):
            doc = doc[_index(doc, part, insert=False)]
        else:
            raise PatchError(f"JSON patch path segment {part!r} is inside a scalar")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    if isinstance(parent, dict):
        parent[parts[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, parts[-1], insert=True), value)
    else:
        raise PatchError(f"JSON patch cannot add under a scalar at {parts!r}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("JSON patch cannot remove the whole document")
    parent = _get(doc, parts[:-1])
    if isinstance(parent, dict):
        if parts[-1] not in parent:
            raise PatchError(f"JSON patch cannot remove missing key {parts[-1]!r}")
        return parent.pop(parts[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], insert=False))
    raise PatchError(f"JSON patch cannot remove under a scalar at {parts!r}")


def json_patch(target: Mapping[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 JSON patch; a failing `test` op raises PatchError (answered as 422)."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations", code=400)
    doc: Any = copy.deepcopy(dict(target))
    for op in ops:
        if not isinstance(op, Mapping) or "op" not in op or "path" not in op:
            raise PatchError(f"JSON patch operation {op!r} needs 'op' and 'path'", code=400)
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise PatchError(f"JSON patch test failed at {op['path']!r}")
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)  # must exist
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                _remove(doc, source)
            doc = _add(doc, parts, value)
        else:
            raise PatchError(f"JSON patch op {kind!r} is unknown", code=400)
    if not isinstance(doc, dict):
        raise PatchError("a JSON patch must leave an object")
    return doc


def _merge_key(field: str, items: list[Any]) -> str | None:
    key = MERGE_KEYS.get(field)
    if field == "ports" and any(isinstance(i, Mapping) and "containerPort" in i for i in items):
        return "containerPort"
    return key


def _strategic_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    base = list(current) if isinstance(current, list) else []
    if field in MERGED_SCALAR_LISTS:
        return base + [item for item in patch if item not in base]
    key = _merge_key(field, patch + base)
    if key is None or not all(isinstance(item, Mapping) for item in patch):
        return copy.deepcopy(patch)
    result = [copy.deepcopy(item) for item in base]
    for item in patch:
        position = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, Mapping) and old.get(key) == item.get(key)
            ),
            None,
        )
        directive = item.get("$patch")
        if directive == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge patch for built-in kinds.

    Lists with a merge key (containers, env, volumes, ...) merge item by item;
    `$patch: delete` removes an item, `$patch: replace` replaces a map, and
    `$deleteFromPrimitiveList/<field>` removes scalars; other `$` directives
    (`$setElementOrder`, `$retainKeys`) only order or prune and are ignored.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field, []) if item not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, result.get(key), value)
        elif isinstance(value, Mapping):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result
