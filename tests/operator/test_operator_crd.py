"""The generated CRD is structural, explains every field and matches the models."""

import yaml
from incluster_operator.api import crd, models

from tools import generate

CRD_PATH = "crds/experiments.incluster.dev.yaml"


def _walk(node, path="$"):
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_the_crd_file_is_registered_and_parses_to_the_definition():
    assert CRD_PATH in generate.GENERATORS
    assert yaml.safe_load(generate.GENERATORS[CRD_PATH]()) == crd.definition()


def test_names_group_and_subresource():
    spec = crd.definition()["spec"]
    assert spec["group"] == "incluster.dev"
    assert spec["names"]["plural"] == "experiments"
    assert spec["names"]["kind"] == "Experiment"
    assert spec["names"]["shortNames"] == ["xp"]
    assert spec["names"]["categories"] == ["incluster"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Ready"] == ".status.ready"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_schema_is_structural():
    schema = crd.openapi_schema()
    for path, node in _walk(schema):
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs"):
            assert forbidden not in node, f"{path} has {forbidden}"
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("default", 0) is not None, f"{path} has a null default"


def test_every_spec_and_status_field_is_explained():
    schema = crd.openapi_schema()
    for root in ("spec", "status"):
        for path, node in _walk(schema["properties"][root], root):
            if path.endswith("[]"):
                continue
            assert node.get("description"), f"{path} has no description for kubectl explain"


def test_optional_fields_are_nullable_and_free_form_ones_preserved():
    spec = crd.openapi_schema()["properties"]["spec"]
    assert spec["properties"]["group"]["nullable"] is True
    assert spec["required"] == ["replicas"]  # project defaults to the namespace
    template = spec["properties"]["replicas"]["additionalProperties"]["properties"]["template"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["framework"]["enum"] == ["none", "tensorflow", "pytorch", "jax"]


def test_model_defaults_match_schema_defaults():
    replica = crd.openapi_schema()["properties"]["spec"]["properties"]["replicas"]
    props = replica["additionalProperties"]["properties"]
    parsed = models.ReplicaSpec.model_validate({"template": {}})
    assert props["replicas"]["default"] == parsed.replicas
    assert props["port"]["default"] == parsed.port
    assert props["restartPolicy"]["default"] == parsed.restart_policy
