"""The operator's HTTPS report API: the only door from a pod to its Experiment.

Why an API of our own instead of a per-experiment Role: a pod that may patch its
Experiment may rewrite its spec (image, ServiceAccount) and its status (phase, end of
the deadline). Here a pod may do three things, each decided by ``reporting`` from what
the API server says, never from what the request says:

- ``GET /v1/experiment``: read its own experiment (metadata, spec, status);
- ``GET /v1/references/<name>``: read the status and outputs path of an experiment its
  spec lists in ``outputsRefs``;
- ``PUT /v1/tracking``: report the tracking summary, the designated reporter replica
  only, while the experiment has not finished, rate-limited per experiment.

Callers authenticate with their projected ServiceAccount token (audience from the
settings), checked by a TokenReview; the pod it is bound to must exist with that uid and
be a replica the operator created. Accepted reviews are cached until the token expires
(at most ``MAX_REVIEW_AGE``) or the pod is deleted (``forget_pod``, from the pod watch).
Accepted summaries are folded into ``status.tracking`` by one writer task: at most one
write per experiment per ``WRITE_INTERVAL``, only when something changed; a summary
accepted before the experiment finished is still written. The operator alone writes the
Experiment.

Runs on kopf's event loop; the blocking ``kubernetes`` calls go to worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp.web
from incluster import contract

from incluster_operator import k8s, reporting
from incluster_operator.reporting import Caller, Refused

log = logging.getLogger(__name__)

#: Per experiment: reports per second and burst (the SDK sends one every 10 s or so).
REPORT_RATE: Final = 2.0
REPORT_BURST: Final = 10.0
#: An experiment's status.tracking is written at most this often (seconds).
WRITE_INTERVAL: Final = 1.0
#: An experiment as read for authorisation is reused this long (seconds).
EXPERIMENT_TTL: Final = 1.0
#: A review is reused at most this long, whatever the token's expiry (seconds).
MAX_REVIEW_AGE: Final = 300.0
#: Longest bearer token read (a JWT of a projected token is about 1 KiB).
MAX_TOKEN_BYTES: Final = 16 * 1024

Handler = Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.StreamResponse]]


def _answer(status: int, body: Mapping[str, Any], **headers: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(dict(body), status=status, headers=headers or None)


@dataclass
class _Pending:
    uid: str
    document: dict[str, Any]
    failures: int = 0


@dataclass
class Counters:
    """What the API did, for tests and benchmarks."""

    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    reviews: int = 0
    writes: int = 0


class ReportApi:
    """The report API of one operator; ``start()`` it on the running loop, ``stop()`` it."""

    def __init__(
        self,
        api: k8s.Api,
        audience: str,
        *,
        rate: float = REPORT_RATE,
        burst: float = REPORT_BURST,
        write_interval: float = WRITE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.audience = audience
        self.clock = clock
        self.write_interval = write_interval
        self.reviews = reporting.ReviewCache(max_age=MAX_REVIEW_AGE)
        self.limiter = reporting.RateLimiter(rate, burst)
        self.counters = Counters()
        self._experiments: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._written: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._runner: aiohttp.web.AppRunner | None = None
        self.app = aiohttp.web.Application(
            client_max_size=reporting.MAX_BODY_BYTES, middlewares=[self._refusals]
        )
        self.app.router.add_get(contract.REPORT_PATH_EXPERIMENT, self.get_experiment)
        self.app.router.add_get(contract.REPORT_PATH_REFERENCES + "/{name}", self.get_reference)
        self.app.router.add_put(contract.REPORT_PATH_TRACKING, self.put_tracking)

    # -- life cycle --------------------------------------------------------------------

    async def start(self, host: str, port: int, ssl_context: Any) -> int:
        """Listen (HTTPS) and start the status writer; returns the bound port."""
        self._runner = aiohttp.web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        self._writer = asyncio.create_task(self._write_loop(), name="incluster-report-writer")
        bound = self._runner.addresses
        return int(bound[0][1]) if bound else port

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._runner is not None:
            await self._runner.cleanup()

    def forget_pod(self, uid: str) -> None:
        """The pod is deleted (or being deleted): its tokens are refused from now on."""
        self.reviews.forget_pod(uid)

    # -- authentication and authorisation ----------------------------------------------

    @aiohttp.web.middleware
    async def _refusals(
        self, request: aiohttp.web.Request, handler: Handler
    ) -> aiohttp.web.StreamResponse:
        """Every refusal becomes a JSON answer with a message; an API outage a 503."""
        try:
            response = await handler(request)
        except Refused as refused:
            self.counters.refused[refused.status] = self.counters.refused.get(refused.status, 0) + 1
            headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else {}
            return _answer(refused.status, {"message": refused.message}, **headers)
        except aiohttp.web.HTTPRequestEntityTooLarge:
            self.counters.refused[413] = self.counters.refused.get(413, 0) + 1
            message = f"the report is larger than {reporting.MAX_BODY_BYTES} bytes"
            return _answer(413, {"message": message})
        except k8s.RETRYABLE as problem:
            log.warning("report API: the Kubernetes API failed: %s", problem)
            message = "the operator cannot reach the Kubernetes API; retry later"
            return _answer(503, {"message": message}, **{"Retry-After": "2"})
        return response

    async def caller(self, request: aiohttp.web.Request) -> Caller:
        """The pod behind the request's bearer token (cached review), or ``Refused(401)``."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            raise Refused(401, "send the pod's projected token as 'Authorization: Bearer ...'")
        key = reporting.token_key(token)
        now = self.clock()
        cached = self.reviews.get(key, now)
        if cached is not None:
            return cached
        self.counters.reviews += 1
        review = await asyncio.to_thread(k8s.token_review, self.api, token, self.audience)
        ref = reporting.review_identity(review, self.audience)
        pod = await asyncio.to_thread(k8s.read_pod, self.api, ref.namespace, ref.name)
        found = reporting.caller_of(ref, pod)
        expiry = reporting.token_expiry(token)
        expires = None if expiry is None else now + (expiry - time.time())
        self.reviews.put(key, found, now, expires)
        return found

    async def experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An Experiment as read at most ``EXPERIMENT_TTL`` ago (None: it does not exist)."""
        key = (namespace, name)
        now = self.clock()
        cached = self._experiments.get(key)
        if cached is not None and now - cached[0] < EXPERIMENT_TTL:
            return cached[1]
        body = await asyncio.to_thread(k8s.read_experiment, self.api, namespace, name)
        if len(self._experiments) > 10_000:
            self._experiments.clear()
        self._experiments[key] = (now, body)
        return body

    async def _own(self, caller: Caller) -> Mapping[str, Any]:
        return reporting.check_owner(caller, await self.experiment(*caller.key))

    # -- the three calls ---------------------------------------------------------------

    async def get_experiment(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        caller = await self.caller(request)
        return _answer(200, reporting.experiment_view(await self._own(caller)))

    async def get_reference(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        caller = await self.caller(request)
        name = request.match_info["name"]
        if not reporting.referable(await self._own(caller), name):
            raise Refused(
                403,
                f"experiment {name!r} is not in spec.outputsRefs.experiments of "
                f"{caller.experiment}; only declared references may be read",
            )
        found = await self.experiment(caller.namespace, name)
        if found is None:
            raise Refused(404, f"experiment {caller.namespace}/{name} does not exist")
        return _answer(200, reporting.reference_view(name, found))

    async def put_tracking(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        caller = await self.caller(request)
        wait = self.limiter.wait_time(caller.key, self.clock())
        if wait > 0:
            self.counters.refused[429] = self.counters.refused.get(429, 0) + 1
            after = str(max(1, math.ceil(wait)))
            message = f"too many reports for {caller.experiment}; retry in {after} s"
            return _answer(429, {"message": message}, **{"Retry-After": after})
        document = reporting.tracking_document(await request.read())
        experiment = await self._own(caller)
        if not reporting.is_reporter(caller, experiment):
            raise Refused(
                403,
                f"{caller.task_type} {caller.index} is not the reporter of {caller.experiment} "
                "(chief or master 0, else worker 0)",
            )
        if reporting.finished(experiment):
            raise Refused(409, f"experiment {caller.experiment} has finished; no more reports")
        if caller.key not in self._pending:
            self._wake.set()  # else the writer already waits for this experiment's turn
        self._pending[caller.key] = _Pending(caller.experiment_uid, document)
        self.counters.accepted += 1
        return _answer(202, {"accepted": True})

    # -- folding summaries into the status -----------------------------------------------

    def _due(self, key: tuple[str, str]) -> float:
        """When the experiment may be written next (a failed write pushes it back)."""
        return self._written.get(key, -math.inf) + self.write_interval

    async def _write_loop(self) -> None:
        """Write pending summaries, each experiment at most once per ``write_interval``."""
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            now = self.clock()
            due = {key: self._due(key) for key in self._pending}
            ready = [key for key, moment in due.items() if moment <= now]
            if not ready:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(due.values()) - now)
                continue
            for key in ready:
                pending = self._pending.pop(key)
                self._written[key] = self.clock()
                try:
                    await asyncio.to_thread(self._write, key, pending)
                except k8s.RETRYABLE as problem:
                    log.warning("writing status.tracking of %s/%s: %s", *key, problem)
                    pending.failures += 1
                    self._pending.setdefault(key, pending)  # a newer report wins
                    self._written[key] = self.clock() + min(30.0, 0.5 * 2**pending.failures)

    def _write(self, key: tuple[str, str], pending: _Pending) -> None:
        """One fold: read the experiment, check it is the same one, patch.

        A summary accepted while the experiment ran is written even if it finished since
        (the last summary a run sends often lands just before its pod ends).
        """
        namespace, name = key
        body = k8s.read_experiment(self.api, namespace, name)
        meta = (body or {}).get("metadata") or {}
        if body is None or meta.get("uid") != pending.uid or meta.get("deletionTimestamp"):
            return
        current = (body.get("status") or {}).get(contract.STATUS_TRACKING)
        current = current if isinstance(current, Mapping) else None
        if current == pending.document:
            return
        patch = reporting.with_removals(current, pending.document)
        k8s.patch_status(self.api, namespace, name, {contract.STATUS_TRACKING: patch})
        self.counters.writes += 1
