"""The experiment's scoped API token: mint, store, decide when to refresh, revoke.

Why TokenRequest bound to a Secret instead of a legacy service-account token Secret:
a TokenRequest token has an expiry (a stolen copy dies on its own) and is bound to an
object, so deleting that object revokes it at once, even before expiry. The operator
keeps the current token in that same Secret, which the pods mount as a file; refreshing
means minting a new token and patching the Secret, and the kubelet swaps the mounted file
atomically (the SDK client re-reads it when its mtime changes).

The I/O functions take a ``kubernetes`` ``ApiClient`` so the reconcile round and the
kopf token timer call them with the operator's own client; ``refresh_at``/``refresh_due``
are pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from incluster_operator.api.times import parse_time
from incluster_operator.render import access

#: Refresh once this fraction of the token's lifetime has passed...
REFRESH_FRACTION: Final = 0.5
#: ...and in any case this long before expiry: the kubelet needs up to a sync period
#: (about a minute) plus its cache TTL to put a new Secret value into running pods.
MIN_REMAINING: Final = timedelta(minutes=5)


@dataclass(frozen=True)
class TokenState:
    """What the Secret says about the stored token (never the token itself)."""

    issued_at: datetime
    expires_at: datetime


def refresh_at(state: TokenState | None) -> datetime | None:
    """When the stored token should be replaced; None means "now" (no usable token).

    Halfway through the lifetime, but never later than ``MIN_REMAINING`` before expiry.
    """
    if state is None:
        return None
    lifetime = state.expires_at - state.issued_at
    halfway = state.issued_at + lifetime * REFRESH_FRACTION
    return min(halfway, state.expires_at - MIN_REMAINING)


def refresh_due(state: TokenState | None, now: datetime) -> bool:
    """True when ``now`` has reached the refresh time (or there is no token yet)."""
    moment = refresh_at(state)
    return moment is None or now >= moment


def state_of(secret: Any) -> TokenState | None:
    """The token state recorded on a Secret (a ``V1Secret``); None when no token is stored.

    Unparseable annotations also give None: the safe reading is "mint a new one".
    """
    data = secret.data or {}
    annotations = secret.metadata.annotations or {}
    issued = parse_time(annotations.get(access.ANNOTATION_ISSUED_AT))
    expires = parse_time(annotations.get(access.ANNOTATION_EXPIRES_AT))
    if access.SECRET_KEY_TOKEN not in data or issued is None or expires is None:
        return None
    return TokenState(issued_at=issued, expires_at=expires)


def _read_secret(api: k8s.ApiClient, namespace: str, experiment: str) -> Any | None:
    """The experiment's token Secret (a ``V1Secret``); None once it is gone (revoked)."""
    names = access.access_names(experiment)
    try:
        return k8s.CoreV1Api(api).read_namespaced_secret(names.secret, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_state(api: k8s.ApiClient, namespace: str, experiment: str) -> TokenState | None:
    """The stored token's state; None when the Secret holds none or does not exist."""
    secret = _read_secret(api, namespace, experiment)
    return None if secret is None else state_of(secret)


def mint(api: k8s.ApiClient, namespace: str, experiment: str, ttl_seconds: int) -> TokenState:
    """Mint a token for the experiment's ServiceAccount, bound to its Secret, and store it.

    The ServiceAccount and the Secret must exist (the reconcile round creates the access
    objects first). Issue and expiry times are the API server's (the expiry it granted minus the
    duration it granted), so the refresh schedule follows the clock that enforces expiry.
    """
    core = k8s.CoreV1Api(api)
    names = access.access_names(experiment)
    secret = core.read_namespaced_secret(names.secret, namespace)
    uid = secret.metadata.uid if secret.metadata else None
    if not uid:
        raise RuntimeError(f"secret {namespace}/{names.secret} has no uid to bind a token to")
    request = k8s.AuthenticationV1TokenRequest(
        api_version="authentication.k8s.io/v1",
        kind="TokenRequest",
        spec=k8s.V1TokenRequestSpec(
            audiences=[],
            expiration_seconds=ttl_seconds,
            bound_object_ref=k8s.V1BoundObjectReference(
                api_version="v1", kind="Secret", name=names.secret, uid=uid
            ),
        ),
    )
    granted = core.create_namespaced_service_account_token(
        names.service_account, namespace, request
    )
    status = granted.status
    if status is None or not status.token:
        raise RuntimeError(
            f"TokenRequest for serviceaccount {namespace}/{names.service_account} returned no token"
        )
    seconds = (granted.spec.expiration_seconds if granted.spec else None) or ttl_seconds
    expires_at = status.expiration_timestamp or datetime.now(UTC) + timedelta(seconds=seconds)
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    issued_at = expires_at - timedelta(seconds=seconds)
    core.patch_namespaced_secret(
        names.secret,
        namespace,
        access.token_secret_patch(status.token, issued_at, expires_at),
    )
    return TokenState(issued_at=issued_at, expires_at=expires_at)


def refresh_if_due(
    api: k8s.ApiClient,
    namespace: str,
    experiment: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> TokenState | None:
    """What a kopf timer calls: mint a new token when the stored one is due, else keep it.

    Returns None, minting nothing, when the Secret does not exist: the access was revoked
    (the experiment finished) or not created yet, and a timer racing the revocation must
    not bring a token back. Call it more often than ``MIN_REMAINING`` (every minute is
    plenty); it costs one GET when nothing is due.
    """
    moment = now or datetime.now(UTC)
    secret = _read_secret(api, namespace, experiment)
    if secret is None:
        return None
    state = state_of(secret)
    if state is not None and not refresh_due(state, moment):
        return state
    return mint(api, namespace, experiment, ttl_seconds)


def revoke(api: k8s.ApiClient, namespace: str, experiment: str) -> list[str]:
    """Revoke the experiment's API access: delete the Secret and the RoleBinding.

    Deleting the Secret invalidates every token bound to it, also copies taken out of a pod;
    deleting the RoleBinding removes the rights even from a token the API server still
    caches. Already-deleted objects are fine (the call is idempotent). Returns the kinds
    actually deleted by this call.
    """
    names = access.access_names(experiment)
    deleted: list[str] = []
    try:
        k8s.CoreV1Api(api).delete_namespaced_secret(names.secret, namespace)
        deleted.append("Secret")
    except ApiException as exc:
        if exc.status != 404:
            raise
    try:
        k8s.RbacAuthorizationV1Api(api).delete_namespaced_role_binding(
            names.role_binding, namespace
        )
        deleted.append("RoleBinding")
    except ApiException as exc:
        if exc.status != 404:
            raise
    return deleted
