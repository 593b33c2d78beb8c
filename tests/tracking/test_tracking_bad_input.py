"""Bad input raises a TypeError/ValueError naming the argument, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from incluster.tracking.run import Run


def _unchanged(run: Run, call: Any, error: type[Exception], match: str) -> None:
    before = Path(run.events_path).read_bytes()
    version = run.version
    with pytest.raises(error, match=match):
        call()
    assert Path(run.events_path).read_bytes() == before
    assert run.version == version


@pytest.mark.parametrize(
    ("value", "error"),
    [("0.5", TypeError), (None, TypeError), (True, TypeError), (1j, TypeError), ([1], TypeError)],
)
def test_non_numeric_metric_value(run: Run, value: Any, error: type[Exception]) -> None:
    _unchanged(run, lambda: run.log_metric("loss", value), error, "value must be a real number")


@pytest.mark.parametrize(("name", "error"), [("", ValueError), (None, TypeError), (3, TypeError)])
def test_bad_metric_name(run: Run, name: Any, error: type[Exception]) -> None:
    _unchanged(run, lambda: run.log_metric(name, 1.0), error, "name must be")


@pytest.mark.parametrize(
    ("step", "error"), [(-1, ValueError), (1.5, TypeError), ("3", TypeError), (False, TypeError)]
)
def test_bad_step(run: Run, step: Any, error: type[Exception]) -> None:
    _unchanged(run, lambda: run.log_metric("loss", 1.0, step=step), error, "step must be")
    _unchanged(run, lambda: run.log_metrics(step=step, loss=1.0), error, "step must be")


@pytest.mark.parametrize(("ts", "error"), [("now", TypeError), (float("nan"), ValueError)])
def test_bad_timestamp(run: Run, ts: Any, error: type[Exception]) -> None:
    _unchanged(run, lambda: run.log_metric("loss", 1.0, timestamp=ts), error, "timestamp must")


def test_log_metrics_checks_every_value_before_writing_any(run: Run) -> None:
    _unchanged(run, lambda: run.log_metrics(step=1, good=1.0, bad="x"), TypeError, "metric 'bad'")
    _unchanged(run, lambda: run.log_metrics(step=1), ValueError, "at least one")


@pytest.mark.parametrize("method", ["log_inputs", "log_outputs"])
def test_unserialisable_inputs_and_outputs_name_the_key(run: Run, method: str) -> None:
    log = getattr(run, method)
    _unchanged(run, lambda: log(ok=1, obj=object()), TypeError, f"{method}: .*'obj'")
    _unchanged(run, lambda: log(ok=1, nan=float("nan")), ValueError, f"{method}: .*'nan'")
    _unchanged(run, lambda: log(), ValueError, "at least one")


def test_bad_tags(run: Run) -> None:
    _unchanged(run, lambda: run.log_tags(["ok", 3]), TypeError, "tags must be a str")
    _unchanged(run, lambda: run.log_tags(["ok", ""]), ValueError, "tags must be a non-empty")
    _unchanged(run, lambda: run.log_tags([]), ValueError, "at least one tag")


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "..", ""])
def test_outputs_file_names_cannot_escape(run: Run, name: str) -> None:
    with pytest.raises(ValueError, match="filename"):
        run.get_outputs_path(name)


def test_outputs_file_names_cannot_escape_through_a_symlink(run: Run, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, Path(run.outputs_path) / "link")
    with pytest.raises(ValueError, match="symlink"):
        run.get_outputs_path("link/file.txt")


@pytest.mark.parametrize("name", ["../x", "a/../../b", "/abs", "a//b", "a/", "..", ".", "", "a\\b"])
def test_artifact_names_are_labels_not_paths(run: Run, name: str) -> None:
    path = run.get_outputs_path("f.txt")
    Path(path).write_text("x")
    _unchanged(run, lambda: run.log_artifact_ref(path, name=name), ValueError, "name=")


def test_artifact_relative_path_cannot_escape_and_must_exist(run: Run) -> None:
    _unchanged(run, lambda: run.log_artifact_ref("../secret"), ValueError, "path=")
    _unchanged(run, lambda: run.log_artifact_ref("missing.bin"), ValueError, "does not exist")
    path = run.get_outputs_path("f.txt")
    Path(path).write_text("x")
    _unchanged(run, lambda: run.log_artifact_ref(path, kind="spreadsheet"), ValueError, "kind=")


def test_bad_data_refs(run: Run) -> None:
    _unchanged(run, lambda: run.log_data_ref(object(), "d"), TypeError, "cannot be hashed")
    _unchanged(run, lambda: run.log_data_ref(b"x", ""), ValueError, "data_name")


def test_store_tree_refuses_a_file_and_the_outputs_root_itself(tmp_path):
    from incluster.tracking import store

    root = tmp_path / "outputs"
    root.mkdir()
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        store.store_tree(str(root), tmp_path / "f.txt")
    with pytest.raises(ValueError, match="is the outputs directory itself"):
        store.store_tree(str(root), root)
    assert list(root.iterdir()) == []
