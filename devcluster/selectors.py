"""Label and field selectors, parsed once per request and matched per object.

The emulator filters lists and watch streams the way kube-apiserver does, so operator code
that relies on a selector (kopf's label filters, `kubectl get -l`, `kubectl wait`) sees the
same objects here as on a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")


class SelectorError(ValueError):
    """A selector string that kube-apiserver would reject with 400 Bad Request."""


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def _label_term(term: str) -> Predicate:
    eq = _EQ_TERM.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    match = _SET_TERM.match(term)
    if not match:
        raise SelectorError(f"labelSelector: cannot parse {term.strip()!r}")
    negated, key, op, values_text = match.groups()
    if op is None:
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    if negated:
        raise SelectorError(f"labelSelector: '!' cannot be combined with {op!r} in {term!r}")
    values = {value.strip() for value in values_text.split(",") if value.strip()}
    if op == "in":
        return lambda labels: labels.get(key) in values
    return lambda labels: labels.get(key) not in values


def label_selector(text: str | None) -> Predicate:
    """Compile `app=x,tier in (a,b),!legacy` into a predicate over an object."""
    terms = [_label_term(term) for term in _split_terms(text or "")]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return matches


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares against (absent fields compare as '')."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_selector(text: str | None) -> Predicate:
    """Compile `metadata.name=x,status.phase!=Running` into a predicate over an object."""
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(text or ""):
        eq = _EQ_TERM.match(term)
        if not eq:
            raise SelectorError(
                f"fieldSelector: cannot parse {term.strip()!r}; use field=value or field!=value"
            )
        path, op, value = eq.groups()
        checks.append((path, op != "!=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, path) == value) is equal for path, equal, value in checks)

    return matches
