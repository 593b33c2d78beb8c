"""The report API's decisions, without I/O: who is calling, may they, what they sent.

Why pure: every rule that keeps a hostile pod out lives here and is tested on plain
dicts. ``reportapi`` does the I/O (HTTPS, TokenReview, reading the pod and the
Experiment, writing the status) and asks these functions at each step:

1. ``review_identity``: a TokenReview's answer -> the pod's namespace, name and uid, read
   only from the ``authentication.kubernetes.io/pod-name``/``pod-uid`` extras the API
   server puts in for a pod-bound token, and only for our audience.
2. ``caller_of``: that pod as stored -> the experiment and replica. Nothing of the
   request is trusted: a pod's labels are written by the operator (the pod holds no right
   to change them), the uid must match the token's, a pod being deleted is refused.
3. ``is_reporter``, ``referable``, ``finished``: what the caller may do.
4. ``tracking_document``: the body -> a bounded status document, or ``Refused``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from incluster import contract

from incluster_operator.api import names

EXTRA_POD_NAME: Final = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID: Final = "authentication.kubernetes.io/pod-uid"
#: The largest body the API reads (the SDK's summary is capped at 64 KiB).
MAX_BODY_BYTES: Final = 64 * 1024
#: Deepest nesting accepted in a summary (the SDK's is 3-4 levels deep).
MAX_DEPTH: Final = 8
#: Keys of ``status.tracking`` a summary may set (what the SDK's summary document holds).
TRACKING_KEYS: Final = frozenset(
    {
        "metrics",
        "outputs",
        "inputs",
        "tags",
        "artifacts",
        "dataRefs",
        contract.STATUS_TRACKING_PRIMARY,
        "droppedRecords",
        "updatedAt",
        "truncated",
    }
)
FINISHED: Final = frozenset({"Succeeded", "Failed"})


class Refused(Exception):
    """A request the API answers with ``status`` and a message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PodRef:
    """The pod a token was bound to, as the API server vouches for it."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Caller:
    """An authenticated pod of one of our experiments, derived from the stored pod."""

    namespace: str
    pod: str
    pod_uid: str
    experiment: str
    experiment_uid: str
    task_type: str
    index: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.experiment)


def _one(extra: Mapping[str, Any], key: str) -> str | None:
    values = extra.get(key)
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
        return values[0] or None
    return None


def review_identity(review: Mapping[str, Any], audience: str) -> PodRef:
    """The pod a reviewed token belongs to; ``Refused(401)`` for anything else.

    A token of our audience that is not bound to a pod (a TokenRequest someone made by
    hand) names no pod and is refused: experiment and replica come from the pod only.
    """
    status = review.get("status") if isinstance(review, Mapping) else None
    if not isinstance(status, Mapping) or status.get("authenticated") is not True:
        error = status.get("error") if isinstance(status, Mapping) else None
        raise Refused(401, f"the token was not accepted: {error or 'not authenticated'}")
    audiences = status.get("audiences")
    if not isinstance(audiences, list) or audience not in audiences:
        raise Refused(401, f"the token is not for the audience {audience!r}")
    user = status.get("user")
    user = user if isinstance(user, Mapping) else {}
    username = str(user.get("username") or "")
    prefix, _, rest = username.partition("system:serviceaccount:")
    namespace = rest.split(":", 1)[0] if not prefix and rest else ""
    extra = user.get("extra")
    extra = extra if isinstance(extra, Mapping) else {}
    pod, uid = _one(extra, EXTRA_POD_NAME), _one(extra, EXTRA_POD_UID)
    if not namespace or pod is None or uid is None:
        raise Refused(401, "the token is not a pod's projected ServiceAccount token")
    return PodRef(namespace=namespace, name=pod, uid=uid)


def caller_of(ref: PodRef, pod: Mapping[str, Any] | None) -> Caller:
    """The experiment and replica of the token's pod, from the pod as stored.

    401 when the pod is gone, replaced (another uid) or being deleted; 403 when it is
    not a pod of an experiment (no operator labels).
    """
    meta = (pod or {}).get("metadata") or {}
    if pod is None or meta.get("uid") != ref.uid:
        raise Refused(401, f"pod {ref.namespace}/{ref.name} of this token no longer exists")
    if meta.get("deletionTimestamp"):
        raise Refused(401, f"pod {ref.namespace}/{ref.name} is being deleted")
    labels = meta.get("labels") or {}
    experiment = labels.get(names.LABEL_EXPERIMENT)
    experiment_uid = labels.get(names.LABEL_EXPERIMENT_UID)
    task_type = labels.get(names.LABEL_REPLICA_TYPE)
    index = str(labels.get(names.LABEL_REPLICA_INDEX, ""))
    if (
        labels.get(names.LABEL_MANAGED_BY) != names.MANAGED_BY
        or not experiment
        or not experiment_uid
        or task_type not in contract.TASK_TYPES
        or not index.isdigit()
    ):
        raise Refused(403, f"pod {ref.namespace}/{ref.name} is not a replica of an experiment")
    owners = [r for r in meta.get("ownerReferences") or () if r.get("controller")]
    if [r.get("uid") for r in owners] != [experiment_uid] or names.pod_name(
        str(experiment), str(task_type), int(index)
    ) != ref.name:
        raise Refused(403, f"pod {ref.namespace}/{ref.name} was not created by the operator")
    return Caller(
        namespace=ref.namespace,
        pod=ref.name,
        pod_uid=ref.uid,
        experiment=str(experiment),
        experiment_uid=str(experiment_uid),
        task_type=str(task_type),
        index=int(index),
    )


def check_owner(caller: Caller, experiment: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The caller's experiment, if it is still the one that created the pod (same uid)."""
    uid = ((experiment or {}).get("metadata") or {}).get("uid")
    if experiment is None or uid != caller.experiment_uid:
        raise Refused(404, f"experiment {caller.namespace}/{caller.experiment} no longer exists")
    return experiment


def reporter(replicas: Mapping[str, Any]) -> tuple[str, int] | None:
    """The one replica that reports the summary: chief or master 0, else worker 0."""
    for task_type in (contract.CHIEF, contract.MASTER, contract.WORKER):
        replica = replicas.get(task_type)
        if isinstance(replica, Mapping) and replica.get("replicas", 1) != 0:
            return (task_type, 0)
    return None


def is_reporter(caller: Caller, experiment: Mapping[str, Any]) -> bool:
    spec = experiment.get("spec") or {}
    replicas = spec.get("replicas") if isinstance(spec, Mapping) else None
    return reporter(replicas if isinstance(replicas, Mapping) else {}) == (
        caller.task_type,
        caller.index,
    )


def finished(experiment: Mapping[str, Any]) -> bool:
    status = experiment.get("status") or {}
    return isinstance(status, Mapping) and status.get("phase") in FINISHED


def referable(experiment: Mapping[str, Any], name: str) -> bool:
    """Whether ``name`` is an experiment this one declared in ``spec.outputsRefs``.

    A reference's last part is the referenced experiment's name (same namespace).
    """
    spec = experiment.get("spec") or {}
    refs = (spec.get("outputsRefs") or {}) if isinstance(spec, Mapping) else {}
    listed = refs.get("experiments") if isinstance(refs, Mapping) else None
    return isinstance(listed, list) and any(
        isinstance(ref, str) and ref.rsplit("/", 1)[-1] == name for ref in listed
    )


def experiment_view(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """What a pod may read of its own experiment: identity, spec and status."""
    meta = experiment.get("metadata") or {}
    return {
        "metadata": {
            key: meta[key] for key in ("name", "namespace", "uid", "generation") if key in meta
        },
        "spec": experiment.get("spec") or {},
        "status": experiment.get("status") or {},
    }


def reference_view(name: str, experiment: Mapping[str, Any]) -> dict[str, Any]:
    """What a pod may read of a referenced experiment: its status and outputs path."""
    status = experiment.get("status") or {}
    outputs = status.get(contract.STATUS_OUTPUTS_PATH) if isinstance(status, Mapping) else None
    return {
        "name": name,
        "status": dict(status) if isinstance(status, Mapping) else {},
        contract.STATUS_OUTPUTS_PATH: outputs if isinstance(outputs, str) else None,
    }


def _depth(value: Any) -> int:
    """Nesting depth, iteratively (a recursive walk is what a hostile body would exploit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend(
                (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def tracking_document(body: bytes) -> dict[str, Any]:
    """A report's body -> the ``status.tracking`` document it asks for; ``Refused(4xx)``.

    The body is ``{"tracking": {...}}``: at most ``MAX_BODY_BYTES``, UTF-8 JSON without
    lone surrogates, nested at most ``MAX_DEPTH`` deep, with only the keys the SDK's
    summary has. The SDK bounds its document the same way; this is the check it cannot
    skip.
    """
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"the report is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        parsed = json.loads(text)
        if "\\u" in text:  # only a \u escape can make a lone surrogate: check those bodies
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        raise Refused(400, "the report is not UTF-8 JSON") from None
    if not isinstance(parsed, dict) or set(parsed) != {contract.STATUS_TRACKING}:
        raise Refused(400, f'the report must be {{"{contract.STATUS_TRACKING}": {{...}}}}')
    document = parsed[contract.STATUS_TRACKING]
    if not isinstance(document, dict):
        raise Refused(400, f"{contract.STATUS_TRACKING} must be a JSON object")
    unknown = sorted(set(document) - TRACKING_KEYS)
    if unknown:
        raise Refused(400, f"unknown keys in {contract.STATUS_TRACKING}: {unknown[:5]}")
    if _depth(document) > MAX_DEPTH:
        raise Refused(400, f"{contract.STATUS_TRACKING} is nested deeper than {MAX_DEPTH}")
    return document


def with_removals(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``previous`` into ``current``: ``null`` for each dropped key."""
    result = dict(current)
    for key, old in (previous or {}).items():
        if key not in current:
            result[key] = None
        elif isinstance(old, Mapping) and isinstance(current[key], Mapping):
            result[key] = with_removals(old, current[key])
    return result


def token_key(token: str) -> str:
    """What the review cache is keyed by: a digest, so no token is kept in memory."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ReviewCache:
    """Accepted callers by token digest, until the token's expiry (or ``max_age``).

    Bounded (the oldest entries go first), and ``forget_pod`` drops every entry of a pod
    as soon as the operator sees it deleted: a copied token dies with its pod here too.
    """

    def __init__(self, max_entries: int = 10_000, max_age: float = 300.0) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[str, tuple[Caller, float]] = OrderedDict()

    def get(self, key: str, now: float) -> Caller | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if now >= found[1]:
            del self._entries[key]
            return None
        return found[0]

    def put(self, key: str, caller: Caller, now: float, expires: float | None) -> None:
        until = now + self.max_age if expires is None else min(expires, now + self.max_age)
        self._entries[key] = (caller, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_pod(self, uid: str) -> int:
        stale = [key for key, (caller, _) in self._entries.items() if caller.pod_uid == uid]
        for key in stale:
            del self._entries[key]
        return len(stale)

    def __len__(self) -> int:
        return len(self._entries)


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying (the review did).

    None for a token that is not a JWT (the dev cluster's opaque tokens).
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class RateLimiter:
    """A token bucket per key: ``rate`` requests per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Any, tuple[float, float]] = OrderedDict()

    def wait_time(self, key: Any, now: float) -> float:
        """0 when the request may go now (and counts it), else seconds until it may."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate
