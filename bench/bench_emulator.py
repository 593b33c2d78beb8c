"""The Kubernetes API emulator: creates/s, list, watch fan-out, and latency vs request count.

Baseline, measured in the same run: kmock 0.8's stock KubernetesEmulator, which matches every
request against the whole request history (its latency grows with the requests served).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import kmock

from devcluster.server import ThreadedCluster

NS_PATH = "/api/v1/namespaces/default/configmaps"


def _cm(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"bench": "yes"}}, "data": {"k": "v"}}


async def _creates(
    session: aiohttp.ClientSession, url: str, prefix: str, count: int, inflight: int
) -> float:
    """Objects created per second with `inflight` concurrent requests."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            async with session.post(url + NS_PATH, json=_cm(f"{prefix}-{index}")) as response:
                assert response.status < 300, await response.text()  # stock kmock answers 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return count / (time.perf_counter() - started)


async def _latency(session: aiohttp.ClientSession, url: str, path: str) -> float:
    started = time.perf_counter()
    async with session.get(url + path) as response:
        await response.read()
        assert response.status == 200
    return time.perf_counter() - started


async def _latency_curve(
    session: aiohttp.ClientSession, url: str, total: int, path: str
) -> tuple[float, float]:
    """Median latency (ms) of GET `path` around request 100 and around request `total`."""
    early: list[float] = []
    late: list[float] = []
    # 200 samples on each side: medians of few samples swing with the machine's noise.
    for index in range(total + 100):
        latency = await _latency(session, url, path)
        if 0 <= index - 100 < 200:
            early.append(latency)
        elif index >= total - 100:
            late.append(latency)
    return statistics.median(early) * 1000, statistics.median(late) * 1000


async def _watch_rate(
    session: aiohttp.ClientSession, url: str, watchers: int, events: int
) -> float:
    """Events per second delivered to `watchers` concurrent watch streams."""
    ready = asyncio.Event()
    counts = [0] * watchers
    opened = 0

    async def watch(slot: int) -> None:
        nonlocal opened
        params = {"watch": "true", "labelSelector": "w=1", "resourceVersion": "1"}
        async with session.get(
            url + NS_PATH, params=params, timeout=aiohttp.ClientTimeout(total=120)
        ) as rsp:
            opened += 1
            if opened == watchers:
                ready.set()
            # A prefix test, not json.loads: the client shares the GIL with the server thread.
            async for line in rsp.content:
                if line.startswith(b'{"type": "ADDED"'):
                    counts[slot] += 1
                    if counts[slot] == events:
                        return

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    await asyncio.wait_for(ready.wait(), 30)
    started = time.perf_counter()
    names = iter(range(events))

    async def writer() -> None:
        for index in names:
            body = {"metadata": {"name": f"w-{index}", "labels": {"w": "1"}}}
            async with session.post(url + NS_PATH, json=body) as response:
                assert response.status == 201

    await asyncio.gather(*(writer() for _ in range(4)))
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return watchers * events / (time.perf_counter() - started)


async def _ours(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        result = {
            "creates_seq": await _creates(session, url, "seq", 1000, 1),
            "creates_16": await _creates(session, url, "par", 1000, 16),
        }
        started = time.perf_counter()
        async with session.get(url + NS_PATH, params={"labelSelector": "bench=yes"}) as response:
            items = (await response.json())["items"]
        result["list_ms"] = (time.perf_counter() - started) * 1000
        result["list_items"] = len(items)
        result["watch_events"] = await _watch_rate(session, url, 10, 500)
        result["lat_100"], result["lat_10000"] = await _latency_curve(
            session, url, 10_000, f"{NS_PATH}/seq-0"
        )
        return result


async def _stock_kmock(creates: int) -> tuple[float, float, float]:
    """kmock 0.8 as shipped: creates/s over the first `creates` requests, and GET latency
    at the start and after them (its per-request cost grows with the request history)."""
    async with kmock.KubernetesEmulator() as emu, kmock.Server(emu) as server:
        emu.resources["v1/configmaps"] = kmock.ResourceInfo(kind="ConfigMap", namespaced=True)
        url = str(server.url).rstrip("/")
        async with aiohttp.ClientSession() as session:
            await _creates(session, url, "stock", 1, 1)
            early = statistics.median(
                [await _latency(session, url, f"{NS_PATH}/stock-0") for _ in range(5)]
            )
            rate = await _creates(session, url, "more", creates, 1)
            late = statistics.median(
                [await _latency(session, url, f"{NS_PATH}/stock-0") for _ in range(5)]
            )
    return rate, early * 1000, late * 1000


def main() -> None:
    stock_rate, stock_early, stock_late = asyncio.run(_stock_kmock(150))
    with ThreadedCluster(request_log_size=2000) as cluster:
        ours = asyncio.run(_ours(cluster.url))
    seq, lat_100, lat_10k = ours["creates_seq"], ours["lat_100"], ours["lat_10000"]
    print(f"   creates/s sequential        {seq:8.0f}")
    print(f"     stock kmock 0.8 (first 150) {stock_rate:6.0f}   ratio x{seq / stock_rate:.1f}")
    print(f"   creates/s, 16 in flight     {ours['creates_16']:8.0f}")
    print(f"   list of {ours['list_items']:.0f} objects      {ours['list_ms']:8.1f} ms")
    print(f"   watch events/s, 10 watchers {ours['watch_events']:8.0f}")
    print(f"   GET latency, request 100 vs 10,000: {lat_100:.2f} vs {lat_10k:.2f} ms")
    print(f"     ratio {lat_10k / lat_100:.2f} (goal ~1.0)")
    print(f"     stock kmock 0.8, request 6 vs 160: {stock_early:.2f} vs {stock_late:.2f} ms")
    print(f"     stock ratio {stock_late / stock_early:.2f}")


if __name__ == "__main__":
    main()
