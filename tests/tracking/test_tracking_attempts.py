"""Whole-experiment restarts: each attempt's records stay apart, attempt 1 as before."""

from __future__ import annotations

import json

import pytest
from incluster import context, contract, tracking
from incluster.errors import ContextError
from incluster.tracking import Run, events
from incluster.tracking.paths import events_file_name


def test_attempt_1_keeps_the_file_name_later_attempts_get_their_own():
    assert events_file_name("worker", 3) == "worker-3.jsonl"
    assert events_file_name("worker", 3, 1) == "worker-3.jsonl"
    assert events_file_name("worker", 3, 2) == "worker-3.attempt-2.jsonl"
    with pytest.raises(ValueError, match="attempt"):
        events_file_name("worker", 3, 0)


def test_each_attempts_records_are_read_apart(tmp_path):
    with Run(tmp_path, "worker", 0, register_atexit=False) as first:
        first.log_metric("loss", 1.0, step=1)
    with Run(tmp_path, "worker", 0, register_atexit=False, attempt=2) as second:
        second.log_metric("loss", 0.5, step=1)
    by_source: dict[str, list[float]] = {}
    started = {}
    for record in events.read_events(tmp_path):
        if isinstance(record, events.Metric):
            by_source.setdefault(record.source, []).append(record.value)
        if isinstance(record, events.RunStarted):
            started[record.source] = record.attempt
    assert by_source == {"worker-0": [1.0], "worker-0.attempt-2": [0.5]}
    assert started == {"worker-0": 1, "worker-0.attempt-2": 2}
    line = (tmp_path / "events" / "worker-0.attempt-2.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["attempt"] == 2
    assert "attempt" not in json.loads(
        (tmp_path / "events" / "worker-0.jsonl").read_text().splitlines()[0]
    )


def test_get_attempt_reads_the_env(monkeypatch):
    monkeypatch.delenv(contract.ENV_ATTEMPT, raising=False)
    assert context.get_attempt() == 1
    monkeypatch.setenv(contract.ENV_ATTEMPT, "3")
    assert context.get_attempt() == 3
    monkeypatch.setenv(contract.ENV_ATTEMPT, "zero")
    with pytest.raises(ContextError, match=contract.ENV_ATTEMPT):
        context.get_attempt()


def test_init_writes_the_attempts_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv(contract.ENV_ATTEMPT, "2")
    run = tracking.init(tmp_path)
    try:
        tracking.log_metric("loss", 0.1, step=0)
        assert run.events_path.endswith("master-0.attempt-2.jsonl")
    finally:
        tracking.end()
