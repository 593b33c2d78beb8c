"""validate(): valid specs parse; every bad input is one InvalidSpec naming field and fix."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from incluster_operator.api import ExperimentSpec, InvalidSpec, validate
from incluster_operator.render import ExperimentMeta, render_all
from incluster_operator.settings import Settings, VolumeSource

SETTINGS = Settings(data_stores={"imagenet": VolumeSource(claim="imagenet")})
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "python:3.11"}]}}


def spec(**replicas):
    replicas = replicas or {"worker": {"replicas": 2}}
    return {
        "project": "mnist",
        "replicas": {t: {"template": copy.deepcopy(TEMPLATE), **r} for t, r in replicas.items()},
    }


def invalid(raw, name="xp"):
    with pytest.raises(InvalidSpec) as info:
        validate(raw, name, SETTINGS)
    return str(info.value)


def test_a_valid_spec_parses_with_defaults():
    got = validate(spec(master={}, worker={"replicas": 2}, ps={}), "xp", SETTINGS)
    assert isinstance(got, ExperimentSpec)
    assert got.framework == "none"
    assert got.replicas["worker"].replicas == 2
    assert got.replicas["master"].port == 2222
    assert got.run_policy.backoff_limit == 6
    assert got.run_policy.clean_pod_policy == "Running"


def test_camel_case_fields_are_read():
    raw = spec() | {
        "logLevel": "DEBUG",
        "outputsRefs": {"experiments": ["xp0", "other/xp1"]},
        "runPolicy": {"activeDeadlineSeconds": 60, "successPolicy": "allWorkers"},
        "data": ["imagenet"],
    }
    got = validate(raw, "xp", SETTINGS)
    assert got.log_level == "DEBUG"
    assert got.outputs_refs.experiments == ["xp0", "other/xp1"]
    assert got.run_policy.active_deadline_seconds == 60
    assert got.run_policy.success_policy == "allWorkers"
    assert got.data == ["imagenet"]


@pytest.mark.parametrize(
    ("mutate", "field", "fix"),
    [
        (lambda s: s["replicas"]["worker"].pop("template"), "spec.replicas.worker.template", "add"),
        (
            lambda s: s["replicas"]["worker"]["template"]["spec"].pop("containers"),
            "spec.replicas.worker.template.spec.containers",
            "add containers",
        ),
        (
            lambda s: s["replicas"]["worker"]["template"].pop("spec"),
            "spec.replicas.worker.template.spec",
            "add a pod spec",
        ),
        (
            lambda s: s["replicas"]["worker"]["template"]["spec"]["containers"][0].pop("image"),
            "spec.replicas.worker.template.spec.containers[0].image",
            "add an image",
        ),
        (
            lambda s: s["replicas"]["worker"].update(replicas=0),
            "spec.replicas.worker.replicas",
            ">= 1",
        ),
        (
            lambda s: s["replicas"]["worker"].update(replicas=-3),
            "spec.replicas.worker.replicas",
            ">= 1",
        ),
        (
            lambda s: s["replicas"]["worker"].update(replicas=10**9),
            "spec.replicas.worker.replicas",
            "<= 10000",
        ),
        (
            lambda s: s["replicas"]["worker"].update(replicas="2"),
            "spec.replicas.worker.replicas",
            "integer",
        ),
        (
            lambda s: s["replicas"].update(launcher=copy.deepcopy(s["replicas"]["worker"])),
            "spec.replicas.launcher",
            "use one of",
        ),
        (lambda s: s.update(data=["nope"]), "spec.data[0]", "imagenet"),
        (lambda s: s.update(framework="mxnet"), "spec.framework", "'pytorch'"),
        (lambda s: s.update(project="My Project"), "spec.project", "DNS label"),
        (lambda s: s.update(projekt="x"), "spec.projekt", "spelling"),
        (lambda s: s.update(replicas={}), "spec.replicas", "at least one"),
        (
            lambda s: s.update(outputsRefs={"experiments": ["../../etc"]}),
            "spec.outputsRefs.experiments[0]",
            "DNS",
        ),
    ],
)
def test_each_bad_input_names_its_field_and_fix(mutate, field, fix):
    raw = spec()
    mutate(raw)
    message = invalid(raw)
    assert field in message
    assert fix in message


def test_master_and_chief_together_are_refused():
    assert "keep only one" in invalid(spec(master={}, chief={}, worker={}))


def test_more_than_one_master_is_refused():
    message = invalid(spec(master={"replicas": 3}))
    assert "spec.replicas.master.replicas" in message
    assert "worker" in message


def test_a_spec_without_a_deciding_replica_is_refused():
    assert "add a master, chief or worker" in invalid(spec(ps={}))


def test_pod_hostnames_must_fit_a_dns_label():
    name = "x" * 54
    assert validate(spec(worker={"replicas": 10}), name, SETTINGS)  # x...-worker-9: 63 chars
    message = invalid(spec(worker={"replicas": 11}), name)
    assert "metadata.name" in message
    assert f"{name}-worker-10" in message
    assert "at most 53 characters" in message


@pytest.mark.parametrize("name", ["x" * 64, "1xp", "Xp", "xp.v1"])
def test_the_experiment_name_must_be_a_service_name(name):
    assert "DNS-1035" in invalid(spec(), name)


def test_all_problems_are_reported_at_once():
    raw = spec(master={"replicas": 2}, chief={})
    raw["data"] = ["nope"]
    with pytest.raises(InvalidSpec) as info:
        validate(raw, "xp", SETTINGS)
    assert len(info.value.problems) == 3


def test_loopback_addressing_bounds_the_replica_count():
    loopback = Settings(addressing="loopback")
    with pytest.raises(InvalidSpec, match=r"spec\.replicas\.worker\.replicas: loopback"):
        validate(spec(worker={"replicas": 8193}), "xp", loopback)
    assert validate(spec(worker={"replicas": 8192}), "xp", loopback)


def test_duplicate_references_are_refused():
    raw = spec() | {"outputsRefs": {"jobs": ["prep", "prep"]}}
    assert "spec.outputsRefs.jobs: a reference is listed twice" in invalid(raw)


def test_a_non_object_spec_is_invalid():
    assert "must be an object" in invalid(["not", "a", "spec"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "project",
        "group",
        "framework",
        "replicas",
        "data",
        "outputsRefs",
        "runPolicy",
        "tags",
        "declarations",
        "logLevel",
        "template",
        "replicas",
        "port",
        "restartPolicy",
        "spec",
        "containers",
        "name",
        "image",
        "env",
        "master",
        "chief",
        "worker",
        "ps",
        "evaluator",
    ]
) | st.text(max_size=6)


def _mutations():
    """Replace or delete one nested key of a valid spec with arbitrary JSON."""
    return st.lists(st.tuples(st.lists(keys, min_size=1, max_size=5), json_values), max_size=4)


def _apply(raw, mutations):
    for path, value in mutations:
        node = raw
        for key in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            if isinstance(node, dict):
                node[path[-1]] = value
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=_mutations(), name=st.text(max_size=70))
def test_malformed_specs_raise_only_invalid_spec(mutations, name):
    raw = _apply(spec(master={}, worker={"replicas": 2}), mutations)
    problems: tuple[str, ...] = ()
    try:
        got = validate(raw, name, SETTINGS)
        # What validate() accepts, rendering turns into objects or an InvalidSpec (a clash).
        children = render_all(got, ExperimentMeta(name, "ns", "uid"), SETTINGS)
    except InvalidSpec as exc:
        problems = exc.problems
    else:
        assert isinstance(got, ExperimentSpec)
        assert len(children.pods) == sum(r.replicas for r in got.replicas.values())
        return
    assert problems
    assert all(p.startswith(("spec", "metadata.name")) for p in problems)


@settings(max_examples=200, deadline=None)
@given(raw=json_values)
def test_arbitrary_json_raises_only_invalid_spec(raw):
    with pytest.raises(InvalidSpec):
        validate(raw, "xp", SETTINGS)


def test_project_defaults_to_the_namespace():
    """A manifest ported from a TFJob or PyTorchJob has no project: it is the namespace."""
    raw = spec()
    raw.pop("project")
    assert validate(raw, "xp", SETTINGS, "team-a").project == "team-a"
    assert validate({**raw, "project": "p"}, "xp", SETTINGS, "team-a").project == "p"
