"""The summary sync against the emulator: outages, slowness, 409/403, convergence.

Training must never wait for the API: the slowest ``log_metric`` during an outage is
measured and must stay far below the client's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import kmock
import pytest
from incluster import contract, tracking
from incluster.client import Client
from incluster.tracking import sync
from incluster.tracking.run import Run

from tests.tokens.conftest import fail, status_patches

pytestmark = pytest.mark.cluster

#: The sync client's (connect, read) timeouts; short, so that failures come quickly.
TIMEOUT = (0.5, 0.5)
#: For the "never blocks" tests: a blocked call would take about this long, so the slowest
#: call is compared with it (a loaded CI machine can deschedule a process for ~0.1 s).
BLOCKING_TIMEOUT = (2.0, 2.0)


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        time.sleep(0.02)


def sync_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "incluster.tracking.sync"]


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path / "outputs", "master", 0, register_atexit=False)
    yield r
    r.end()


def start(
    run: Run, interval: float = 0.05, timeout: tuple[float, float] = TIMEOUT, **limits: int
) -> sync.SummarySync:
    return sync.SummarySync(
        lambda: run.version,
        run.summary,
        lambda: Client(timeout=timeout, retries=0),
        interval=interval,
        limits=sync.Limits(**limits) if limits else sync.Limits(),
    ).start()


def metric_of(experiment, name: str):
    return experiment.tracking().get("metrics", {}).get(name)


def test_summary_converges_after_an_outage(pod_context, experiment, cluster, run, caplog):
    outage = threading.Event()
    outage.set()
    fail(cluster, 503, status_patches(), outage)
    syncer = start(run, timeout=BLOCKING_TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="incluster.tracking.sync"):
        slowest = 0.0
        for step in range(20_000):
            began = time.perf_counter()
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            slowest = max(slowest, time.perf_counter() - began)
        wait_for(lambda: syncer.failures.get("server", 0) >= 3)
        assert metric_of(experiment, "loss") is None, "nothing lands during the outage"
        outage.clear()
        wait_for(lambda: metric_of(experiment, "loss") == {"value": 1 / 20_000, "step": 19_999})
    assert syncer.close(timeout=5)
    assert slowest < BLOCKING_TIMEOUT[1] / 4, f"a log_metric call took {slowest:.3f} s in an outage"
    (warning,) = sync_warnings(caplog)
    assert "(server)" in warning


def test_a_stalled_api_never_slows_logging(pod_context, experiment, cluster, run):
    arrived, release, answered = threading.Event(), threading.Event(), threading.Event()

    async def stall() -> None:
        arrived.set()
        while not release.is_set():
            await asyncio.sleep(0.02)
        answered.set()
        raise kmock.KubernetesError(status=504)

    stalled = threading.Event()
    stalled.set()
    fail(cluster, 0, status_patches(), stalled, payload=lambda: stall())
    syncer = start(run, timeout=BLOCKING_TIMEOUT)
    step, slowest, while_stalled = 0, 0.0, 0
    while while_stalled < 20_000:
        began = time.perf_counter()
        run.log_metric("loss", float(step), step=step)
        slowest = max(slowest, time.perf_counter() - began)
        step += 1
        while_stalled += arrived.is_set()
        if step > 5_000_000:
            raise AssertionError("the sync never sent a patch")
    # 20,000 calls returned while a patch hung in the API:
    assert not answered.is_set()
    assert syncer.failures == {}, "the stalled patch was still waiting for its answer"
    wait_for(lambda: syncer.failures.get("unreachable", 0) >= 1)  # the client timed out
    stalled.clear()
    release.set()
    wait_for(lambda: metric_of(experiment, "loss") == {"value": float(step - 1), "step": step - 1})
    syncer.close(timeout=5)
    assert slowest < BLOCKING_TIMEOUT[1] / 4, f"a log_metric call took {slowest:.3f} s"


def test_conflicts_and_server_errors_are_retried_each_logged_once(
    pod_context, experiment, cluster, run, caplog
):
    fail(cluster, 409, status_patches(count=3))
    fail(cluster, 500, status_patches(count=3))
    run.log_outputs(best=0.75)
    run.log_tags("baseline")
    with caplog.at_level(logging.WARNING, logger="incluster.tracking.sync"):
        syncer = start(run)
        wait_for(lambda: experiment.tracking().get("outputs") == {"best": 0.75})
        syncer.close(timeout=5)
    assert syncer.failures == {"conflict": 3, "server": 3}
    assert experiment.tracking()["tags"] == ["baseline"]
    kinds = sorted(m[m.index("(") + 1 : m.index(")")] for m in sync_warnings(caplog))
    assert kinds == ["conflict", "server"]


def test_revoked_token_never_reaches_training(pod_context, experiment, cluster, run, caplog):
    fail(cluster, 403, status_patches())
    with caplog.at_level(logging.WARNING):
        syncer = start(run)
        for step in range(100):
            run.log_metric("loss", 0.1, step=step)
        wait_for(lambda: syncer.failures.get("forbidden", 0) >= 3)
        assert not syncer.close(timeout=0.2)
        # The note about the undelivered final summary comes when the thread gives up.
        wait_for(lambda: len(sync_warnings(caplog)) == 2)
    first, final = sync_warnings(caplog)
    assert "(forbidden)" in first
    assert "final tracking summary" in final
    assert run.summary()["metrics"]["loss"] == {"value": 0.1, "step": 99}


def test_close_delivers_the_final_summary_without_waiting_for_the_interval(
    pod_context, experiment, run
):
    syncer = start(run, interval=3600)
    run.log_metric("loss", 0.5, step=1)
    run.log_outputs(accuracy=0.93)
    assert syncer.close(timeout=5)
    doc = experiment.tracking()
    assert doc["metrics"] == {"loss": {"value": 0.5, "step": 1}}
    assert doc["outputs"] == {"accuracy": 0.93}


def test_entries_pushed_out_by_the_cap_leave_the_status(pod_context, experiment, run):
    syncer = start(run, interval=3600, max_entries=2)
    run.log_metric("b", 1.0)
    run.log_metric("c", 1.0)
    assert syncer.sync_once()
    assert set(experiment.tracking()["metrics"]) == {"b", "c"}
    run.log_metric("a", 1.0)
    assert syncer.sync_once()
    doc = experiment.tracking()
    assert set(doc["metrics"]) == {"a", "b"}
    assert doc["truncated"]["omitted"] == {"metrics": 1}
    syncer.close(timeout=5)


def test_missing_token_is_one_warning_and_no_error_in_training(
    pod_context, experiment, run, caplog
):
    (pod_context / contract.DIR_TOKEN / contract.FILE_TOKEN).unlink()
    with caplog.at_level(logging.WARNING, logger="incluster.tracking.sync"):
        syncer = start(run)
        run.log_metric("loss", 1.0)
        wait_for(lambda: syncer.failures.get("token", 0) >= 2)
        assert not syncer.close(timeout=0.2)
        wait_for(lambda: len(sync_warnings(caplog)) == 2)
    first, final = sync_warnings(caplog)
    assert "(token)" in first
    assert "does not exist" in first
    assert "final tracking summary" in final


def test_module_api_syncs_on_the_writer_replica_only(pod_context, experiment, monkeypatch):
    monkeypatch.setenv(contract.ENV_SUMMARY_SYNC_SECONDS, "3600")
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "worker", "index": 0}')
    tracking.init()
    try:
        assert tracking._sync is None, "worker 0 is not the writer when there is a master"
    finally:
        tracking.end()
    monkeypatch.setenv(contract.ENV_TASK_INFO, '{"type": "master", "index": 0}')
    tracking.init()
    try:
        assert tracking._sync is not None
        tracking.log_metric("loss", 0.25, step=7)
    finally:
        tracking.end()
    doc = experiment.tracking()
    assert doc["metrics"]["loss"] == {"value": 0.25, "step": 7}
    assert doc["primaryMetric"] == "loss=0.25 @ 7"
