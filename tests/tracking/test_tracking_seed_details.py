"""The last gaps between the seeds' signatures and ours (issue 14, deliverable 4).

Each test is a call as the seed pages or Polyaxon's own clients spell it, checked by
what lands in the event file and the summary, so a regression in either shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from incluster import Experiment, tracking
from incluster.schemas import ArtifactKind, V1ArtifactKind
from incluster.tracking import events
from incluster.tracking.run import Run

#: Every value of Polyaxon's V1ArtifactKind (polyaxon 1.x/2.x schemas), 32 of them.
POLYAXON_KINDS = [
    "model",
    "audio",
    "video",
    "histogram",
    "image",
    "tensor",
    "dataframe",
    "chart",
    "csv",
    "tsv",
    "psv",
    "ssv",
    "metric",
    "env",
    "html",
    "text",
    "file",
    "dir",
    "tensorboard",
    "dockerfile",
    "docker_image",
    "data",
    "coderef",
    "table",
    "curve",
    "confusion",
    "analysis",
    "iteration",
    "markdown",
    "system",
    "artifact",
    "span",
]


def _records(run: Run, kind: type[events.Event]) -> list[Any]:
    return [r for r in events.read_events(run.events_path) if isinstance(r, kind)]


def test_v1_artifact_kind_is_our_enum_and_has_every_polyaxon_kind() -> None:
    assert V1ArtifactKind is ArtifactKind
    assert len(POLYAXON_KINDS) == 32
    values = {k.value for k in ArtifactKind}
    assert set(POLYAXON_KINDS) <= values
    for value in POLYAXON_KINDS:
        # the member name is the upper-case value, as Polyaxon spells it
        assert V1ArtifactKind[value.upper()].value == value


@pytest.mark.parametrize("kind", POLYAXON_KINDS)
def test_every_polyaxon_kind_is_accepted_by_log_artifact_ref(run: Run, kind: str) -> None:
    path = Path(run.get_outputs_path(f"a/{kind}.bin"))
    path.write_bytes(kind.encode())
    record = run.log_artifact_ref(path, kind=V1ArtifactKind(kind))
    assert record["kind"] == kind
    run.end()
    (ref,) = [r for r in events.read_events(run.events_path) if isinstance(r, events.ArtifactRef)]
    assert ref.kind == kind


def test_experiment_log_metrics_takes_a_timestamp(default_run: Run) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    Experiment().log_metrics(step=3, timestamp=when, loss=0.5)
    Experiment().log_metrics(timestamp=when.timestamp() + 1, acc=0.9)
    tracking.end()
    points = _records(default_run, events.Metric)
    assert [(p.name, p.step, p.timestamp) for p in points] == [
        ("loss", 3, when.timestamp()),
        ("acc", None, when.timestamp() + 1),
    ]


def test_log_params_reset_replaces_instead_of_storing_a_param_named_reset(
    default_run: Run,
) -> None:
    xp = Experiment()
    xp.log_params(lr=0.1, layers=3)
    xp.log_params(reset=True, lr=0.2)
    assert default_run.summary()["inputs"] == {"lr": 0.2}
    xp.log_params(batch=64)  # merging again after the reset
    assert default_run.summary()["inputs"] == {"lr": 0.2, "batch": 64}
    tracking.log_inputs(reset=True)  # nothing: clears
    assert default_run.summary()["inputs"] == {}
    tracking.end()
    logged = _records(default_run, events.Inputs)
    assert [(r.values, r.reset) for r in logged] == [
        ({"lr": 0.1, "layers": 3}, False),
        ({"lr": 0.2}, True),
        ({"batch": 64}, False),
        ({}, True),
    ]


def test_log_outputs_reset(default_run: Run) -> None:
    tracking.log_outputs(a=1, b=2)
    tracking.log_outputs(reset=True, c=3)
    assert default_run.summary()["outputs"] == {"c": 3}


def test_log_tags_reset(default_run: Run) -> None:
    xp = Experiment()
    xp.log_tags(["a", "b"])
    xp.log_tags("c", reset=True)
    assert default_run.summary()["tags"] == ["c"]
    tracking.log_tags(["d"])
    tracking.log_tags([], reset=True)
    assert default_run.summary()["tags"] == []
    with pytest.raises(ValueError, match="at least one tag"):
        tracking.log_tags([])
    tracking.end()
    tags = [r for r in events.read_events(default_run.events_path) if isinstance(r, events.Tags)]
    assert [(t.tags, t.reset) for t in tags] == [
        (["a", "b"], False),
        (["c"], True),
        (["d"], False),
        ([], True),
    ]


def test_reset_must_be_a_bool(default_run: Run) -> None:
    with pytest.raises(TypeError, match="reset must be True or False"):
        tracking.log_inputs(reset="yes", lr=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one name=value input"):
        tracking.log_inputs()


def test_log_data_ref_defaults_data_name_and_resets(default_run: Run) -> None:
    xp = Experiment()
    first = xp.log_data_ref(b"abc")
    assert default_run.summary()["data_refs"] == {"data": first}
    other = xp.log_data_ref(data=b"xyz", data_name="dataset_y")
    assert default_run.summary()["data_refs"] == {"data": first, "dataset_y": other}
    xp.log_data_ref(b"new", data_name="only", reset=True)
    assert list(default_run.summary()["data_refs"]) == ["only"]
    assert tracking.log_data_ref(b"abc") == first
