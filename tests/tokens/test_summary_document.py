"""The bounded status.tracking document and who writes it (pure parts of the sync)."""

from __future__ import annotations

import json

import pytest
from incluster import contract
from incluster.errors import ContextError
from incluster.tracking import sync
from incluster.tracking.run import Run
from incluster_operator import reporting

NOW = 1_800_000_000.0


def test_summary_of_a_real_run_maps_to_status_keys(tmp_path):
    run = Run(tmp_path, "master", 0, register_atexit=False)
    run.log_metric("loss", 0.5, step=3)
    run.log_metric("loss", 0.25, step=4)
    run.log_metric("acc", float("nan"), step=4)
    run.log_inputs(lr=0.1)
    run.log_outputs(best=0.9)
    run.log_tags(["a", "b"])
    run.log_data_ref(b"bytes", "train")
    (tmp_path / "model.bin").write_bytes(b"m")
    run.log_artifact_ref("model.bin", name="model")
    run.end()
    doc = sync.tracking_document(run.summary(), now=NOW)
    assert doc["metrics"] == {
        "acc": {"value": "NaN", "step": 4},
        "loss": {"value": 0.25, "step": 4},
    }
    assert doc["inputs"] == {"lr": 0.1}
    assert doc["outputs"] == {"best": 0.9}
    assert doc["tags"] == ["a", "b"]
    assert list(doc["dataRefs"]) == ["train"]
    assert [a["name"] for a in doc["artifacts"]] == ["model"]
    assert doc["updatedAt"] == "2027-01-15T08:00:00Z"
    assert "truncated" not in doc
    json.dumps(doc, allow_nan=False)  # the API accepts only strict JSON


def test_entry_cap_keeps_names_in_order_and_counts_the_rest():
    summary = {"metrics": {f"m{i:03d}": {"value": i, "step": i} for i in range(50)}}
    doc = sync.tracking_document(summary, sync.Limits(max_entries=10), now=NOW)
    assert list(doc["metrics"]) == [f"m{i:03d}" for i in range(10)]
    assert doc["truncated"]["omitted"] == {"metrics": 40}
    assert "events" in doc["truncated"]["note"]


def test_lists_keep_their_latest_entries():
    summary = {"tags": [f"t{i}" for i in range(20)]}
    doc = sync.tracking_document(summary, sync.Limits(max_entries=3), now=NOW)
    assert doc["tags"] == ["t17", "t18", "t19"]


def test_byte_cap_holds_for_huge_summaries():
    limits = sync.Limits(max_bytes=16 * 1024)
    summary = {
        "metrics": {f"metric-{i}": {"value": i * 0.1, "step": i} for i in range(5000)},
        "inputs": {f"p{i}": "x" * 100 for i in range(5000)},
        "tags": ["t" * 50] * 5000,
        "artifacts": [{"name": f"a{i}", "path": "p" * 200} for i in range(5000)],
    }
    doc = sync.tracking_document(summary, limits, now=NOW)
    assert len(json.dumps(doc, separators=(",", ":"))) <= limits.max_bytes
    assert sum(doc["truncated"]["omitted"].values()) > 0


def test_one_oversized_entry_is_left_out_alone():
    summary = {"outputs": {"small": 1, "huge": "x" * 10_000}}
    doc = sync.tracking_document(summary, now=NOW)
    assert doc["outputs"] == {"small": 1}
    assert doc["truncated"]["omitted"] == {"outputs": 1}


def test_removed_keys_become_nulls_in_the_merge_patch():
    previous = {"metrics": {"a": 1, "b": 2}, "truncated": {"omitted": {"metrics": 1}}}
    current = {"metrics": {"a": 3}}
    assert reporting.with_removals(previous, current) == {
        "metrics": {"a": 3, "b": None},
        "truncated": None,
    }
    assert reporting.with_removals(None, current) == current


@pytest.mark.parametrize(
    ("cluster", "task", "writer"),
    [
        ({"master": ["m"], "worker": ["w0", "w1"]}, {"type": "master", "index": 0}, True),
        ({"master": ["m"], "worker": ["w0", "w1"]}, {"type": "worker", "index": 0}, False),
        ({"chief": ["c"], "worker": ["w0"]}, {"type": "chief", "index": 0}, True),
        ({"chief": ["c"], "worker": ["w0"]}, {"type": "worker", "index": 0}, False),
        ({"worker": ["w0", "w1"], "ps": ["p"]}, {"type": "worker", "index": 0}, True),
        ({"worker": ["w0", "w1"], "ps": ["p"]}, {"type": "worker", "index": 1}, False),
        ({"worker": ["w0", "w1"], "ps": ["p"]}, {"type": "ps", "index": 0}, False),
        ({"worker": ["w0"]}, {"type": "evaluator", "index": 0}, False),
        ({}, {"type": "master", "index": 0}, True),
    ],
)
def test_exactly_one_replica_writes(cluster, task, writer):
    assert sync.is_summary_writer(cluster, task) is writer


def test_interval_comes_from_the_contract_env_var():
    assert sync.interval_from_env({}) == sync.DEFAULT_INTERVAL
    assert sync.interval_from_env({contract.ENV_SUMMARY_SYNC_SECONDS: "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ContextError, match=contract.ENV_SUMMARY_SYNC_SECONDS):
            sync.interval_from_env({contract.ENV_SUMMARY_SYNC_SECONDS: bad})


def test_primary_metric_is_one_short_string_for_kubectl():
    summary = {"metrics": {"loss": {"value": 0.123456789, "step": 40}, "acc": {"value": 1}}}
    assert sync.tracking_document(summary, now=NOW, primary="loss")["primaryMetric"] == (
        "loss=0.123457 @ 40"
    )
    assert sync.tracking_document(summary, now=NOW, primary="acc")["primaryMetric"] == "acc=1"
    assert "primaryMetric" not in sync.tracking_document(summary, now=NOW, primary="missing")


def test_the_primary_metric_survives_the_cap():
    summary = {"metrics": {f"m{i:03d}": {"value": i, "step": i} for i in range(50)}}
    doc = sync.tracking_document(summary, sync.Limits(max_entries=3), now=NOW, primary="m042")
    assert list(doc["metrics"]) == ["m042", "m000", "m001"]
    assert doc["truncated"]["omitted"] == {"metrics": 47}
