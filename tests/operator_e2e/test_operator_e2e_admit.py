"""Property test: any spec given to the operator's pure entry gives children or a clean Failed.

``desired.admit`` is what the reconcile loop calls before touching the API, so the
guarantees of "bad input" live here: it never raises, a rejected spec yields phase
Failed with an InvalidSpec condition that names a field, and nothing is created. Run
without an API server to stay fast.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as hs
from incluster_operator import desired, status
from incluster_operator.api import names
from incluster_operator.settings import Settings, VolumeSource

SETTINGS = Settings(data_stores={"imagenet": VolumeSource(claim="imagenet")})
NOW = datetime(2026, 1, 1, tzinfo=UTC)
UID = "0b5c2f5e-0000-4000-8000-000000000001"

VALID: dict[str, Any] = {
    "project": "demo",
    "framework": "tensorflow",
    "data": ["imagenet"],
    "replicas": {
        "master": {"template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}},
        "worker": {
            "replicas": 2,
            "restartPolicy": "ExitCode",
            "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
        },
    },
    "runPolicy": {"backoffLimit": 2, "cleanPodPolicy": "All"},
}

json_leaf = hs.one_of(
    hs.none(),
    hs.booleans(),
    hs.integers(min_value=-(2**40), max_value=2**40),
    hs.floats(allow_nan=False, allow_infinity=False),
    hs.text(max_size=80),
)
json_value = hs.recursive(
    json_leaf,
    lambda inner: hs.one_of(
        hs.lists(inner, max_size=4), hs.dictionaries(hs.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Values that sit near the edges of what the schema accepts.
edgy = hs.one_of(
    json_value,
    hs.sampled_from(
        [0, -1, 1, 3, 65536, "", "Never", "OnFailure", "ExitCode", "x" * 70, "UPPER", "a/b", []]
    ),
)
paths = hs.sampled_from(
    [
        ("project",),
        ("group",),
        ("framework",),
        ("data",),
        ("data", 0),
        ("replicas",),
        ("replicas", "master"),
        ("replicas", "launcher"),
        ("replicas", "worker", "replicas"),
        ("replicas", "worker", "port"),
        ("replicas", "worker", "restartPolicy"),
        ("replicas", "worker", "template"),
        ("replicas", "worker", "template", "spec"),
        ("replicas", "worker", "template", "spec", "containers"),
        ("replicas", "worker", "template", "spec", "hostname"),
        ("replicas", "worker", "template", "spec", "volumes"),
        ("replicas", "master", "template", "metadata"),
        ("replicas", "master", "template", "spec", "containers", 0, "env"),
        ("replicas", "master", "template", "spec", "containers", 0, "volumeMounts"),
        ("outputsRefs",),
        ("outputsRefs", "experiments"),
        ("runPolicy",),
        ("runPolicy", "backoffLimit"),
        ("runPolicy", "cleanPodPolicy"),
        ("runPolicy", "successPolicy"),
        ("declarations",),
        ("unknownField",),
    ]
)


def _set(spec: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``spec`` with ``value`` at ``path`` (creating objects on the way)."""
    spec = copy.deepcopy(spec)
    node = spec
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return spec
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)
    ):
        node[path[-1]] = value
    return spec


mutated = hs.builds(
    lambda edits: _apply(edits),
    hs.lists(hs.tuples(paths, edgy), min_size=1, max_size=3),
)


#: Edits that keep the spec valid, so the "children" branch is exercised too.
benign = hs.lists(
    hs.one_of(
        hs.tuples(hs.just(("replicas", "worker", "replicas")), hs.integers(1, 4)),
        hs.tuples(hs.just(("replicas", "worker", "port")), hs.integers(1, 65535)),
        hs.tuples(
            hs.just(("replicas", "worker", "restartPolicy")),
            hs.sampled_from(["Never", "OnFailure", "ExitCode"]),
        ),
        hs.tuples(hs.just(("runPolicy", "cleanPodPolicy")), hs.sampled_from(["None", "All"])),
        hs.tuples(hs.just(("framework",)), hs.sampled_from(["none", "pytorch", "jax"])),
        hs.tuples(hs.just(("declarations",)), hs.dictionaries(hs.text(max_size=8), json_value)),
        hs.tuples(hs.just(("group",)), hs.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)),
    ),
    min_size=1,
    max_size=4,
).map(lambda edits: _apply(edits))


def _apply(edits: list[tuple[tuple[Any, ...], Any]]) -> Any:
    spec: Any = VALID
    for path, value in edits:
        spec = _set(spec, path, value)
    return spec


def body(spec: Any, name: str = "exp") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": UID, "generation": 1},
        "spec": spec,
    }


def check(admitted: desired.Desired | status.Decision, name: str) -> None:
    """The pure entry's contract for one spec."""
    if isinstance(admitted, status.Decision):
        assert admitted.create == ()
        assert admitted.delete == ()
        assert not admitted.delete_experiment
        assert admitted.status.phase == "Failed"
        invalid = [c for c in admitted.status.conditions if c.type == "InvalidSpec"]
        assert len(invalid) == 1
        assert invalid[0].status == "True"
        message = invalid[0].message
        assert message.startswith(("spec", "metadata.name")), message
        assert [e.reason for e in admitted.events] == ["InvalidSpec"]
        return
    assert admitted.meta.name == name
    kinds = [child["kind"] for child in admitted.children]
    # No access objects: pods get a projected token, not a ServiceAccount of ours.
    assert kinds == ["Service", "ConfigMap"]
    assert len(admitted.pods) == sum(r.replicas for r in admitted.spec.replicas.values())
    for (task_type, index), pod in admitted.pods.items():
        labels = pod["metadata"]["labels"]
        assert labels[names.LABEL_REPLICA_TYPE] == task_type
        assert labels[names.LABEL_REPLICA_INDEX] == str(index)
        assert pod["metadata"]["ownerReferences"][0]["uid"] == UID
    for child in admitted.children:
        assert child["metadata"]["ownerReferences"][0]["uid"] == UID


def test_the_valid_spec_is_admitted() -> None:
    admitted = desired.admit(body(VALID), SETTINGS, NOW)
    assert isinstance(admitted, desired.Desired)
    check(admitted, "exp")


@settings(max_examples=150, deadline=None)
@given(spec=hs.one_of(json_value, mutated, benign))
def test_any_spec_is_admitted_or_failed_cleanly(spec: Any) -> None:
    check(desired.admit(body(spec), SETTINGS, NOW), "exp")


@settings(max_examples=60, deadline=None)
@given(
    name=hs.one_of(hs.text(max_size=70), hs.from_regex(r"[a-z][a-z0-9-]{40,62}", fullmatch=True))
)
def test_any_name_is_admitted_or_failed_cleanly(name: str) -> None:
    check(desired.admit(body(VALID, name), SETTINGS, NOW), name)


def test_an_invalid_spec_names_the_field_and_the_fix() -> None:
    spec = _set(VALID, ("replicas", "worker", "replicas"), 0)
    decision = desired.admit(body(spec), SETTINGS, NOW)
    assert isinstance(decision, status.Decision)
    condition = next(c for c in decision.status.conditions if c.type == "InvalidSpec")
    assert condition.message.startswith("spec.replicas.worker.replicas")
    assert "use a value >= 1" in condition.message


def test_the_same_invalid_spec_twice_writes_nothing_new() -> None:
    """Idempotence is what keeps an invalid Experiment out of a retry loop."""
    spec = {"project": "demo", "replicas": {}}
    first = desired.admit(body(spec), SETTINGS, NOW)
    assert isinstance(first, status.Decision)
    again_body = body(spec) | {"status": first.status_patch()}
    second = desired.admit(again_body, SETTINGS, NOW.replace(hour=5))
    assert isinstance(second, status.Decision)
    assert second.status_patch() == first.status_patch()
    assert second.events == ()
