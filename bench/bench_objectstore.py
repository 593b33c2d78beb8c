"""Object-store outputs against a real local S3 server (moto's), baselines in the same run.

1. ``log_metric`` calls/s with the background uploader on (a round every 0.5 s sending
   the new lines to S3 while the loop runs) vs off, in the same process, rounds
   interleaved, best of each. Goal: within 10%.
2. Upload MB/s of ``Experiment.log_outputs(tree)`` (upload, the files hashed meanwhile,
   artifact records) against a plain ``s3fs`` ``put`` of the same tree, both with a warm
   client (a run's uploader has sent its first event lines by then). Goal: >= 0.9x.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from devcluster import s3server

N = 40_000
ROUNDS = 7
FILES, FILE_BYTES = 16, 1 << 20


def _rate(fn: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def _bench_log_metric(tmp: Path, url: str) -> None:
    from incluster.tracking.run import Run

    off = Run(tmp / "off", register_atexit=False)
    on = Run(tmp / "on", register_atexit=False, outputs_url=f"{url}/on", upload_seconds=0.5)

    def loop(run: Run) -> Callable[[], None]:
        log = run.log_metric

        def body() -> None:
            for i in range(N):
                log("loss", i * 0.001, i)

        return body

    best = {"uploader off": 0.0, "uploader on": 0.0}
    contenders = {"uploader off": loop(off), "uploader on": loop(on)}
    for r in range(ROUNDS):  # interleaved, the order swapped every round
        for name in sorted(contenders, reverse=bool(r % 2)):
            best[name] = max(best[name], _rate(contenders[name], N))
    assert on.uploader is not None
    segments = on.uploader.events_offset
    off.end()
    on.end()
    ratio = best["uploader on"] / best["uploader off"]
    for name, rate in best.items():
        print(f"   log_metric, {name:<13} {rate / 1000:8.1f}k calls/s (best of {ROUNDS})")
    verdict = "ok" if ratio >= 0.9 else "BELOW GOAL"
    print(f"   on / off: {ratio:.2f}x (goal >= 0.90x: {verdict}); {segments} bytes sent meanwhile")


def _bench_upload(tmp: Path, url: str) -> None:
    import s3fs
    from incluster import Experiment
    from incluster.tracking.run import Run

    tree = tmp / "tree"
    for i in range(FILES):
        (tree / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{i % 4}" / f"f{i}.bin").write_bytes(os.urandom(FILE_BYTES))
    megabytes = FILES * FILE_BYTES / 1e6
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    best = {"s3fs put": 0.0, "log_outputs": 0.0}
    for r in range(3):
        target = f"{url}/plain-{r}"
        best["s3fs put"] = max(
            best["s3fs put"],
            _rate(lambda t=target: fs.put(str(tree), t, recursive=True), megabytes),
        )
        run = Run(tmp / f"run-{r}", register_atexit=False, outputs_url=f"{url}/ours-{r}")
        assert run.uploader is not None
        run.uploader.sync_events()  # the client is warm, as the baseline's is after round 0
        log_outputs = Experiment(run).log_outputs
        best["log_outputs"] = max(
            best["log_outputs"], _rate(lambda f=log_outputs: f(tree), megabytes)
        )
        assert run.uploader is not None
        assert not run.uploader.failures, run.uploader.failures
        run.end()
    for name, rate in best.items():
        size = f"{megabytes:.0f} MB in {FILES} files"
        print(f"   upload {size}, {name:<12} {rate:7.1f} MB/s (best of 3)")
    ratio = best["log_outputs"] / best["s3fs put"]
    verdict = "ok" if ratio >= 0.9 else "BELOW GOAL"
    print(f"   log_outputs / s3fs put: {ratio:.2f}x (goal >= 0.90x: {verdict})")


def main() -> None:
    server = s3server.start()
    try:
        with s3server.environ(s3server.client_env(server.endpoint)):
            import s3fs

            bucket = "bench-outputs"
            s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
            with tempfile.TemporaryDirectory(prefix="bench-objectstore-") as tmp:
                _bench_log_metric(Path(tmp), f"s3://{bucket}")
                _bench_upload(Path(tmp), f"s3://{bucket}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
