"""A small Kubernetes API client for the pod's own Experiment, with the scoped token.

Why not the ``kubernetes`` package: it costs seconds of import time and megabytes in every
training image, and the SDK needs three calls. Why not the pod's own service account: the
pod keeps the user's account (cloud IAM); the operator mounts a separate short-lived token,
allowed to read and patch this Experiment only, as a file in the context directory.

The token file is re-read whenever its mtime, size or inode changes, because the operator
refreshes it before expiry and the kubelet swaps the mounted file under the running pod.
Transient faults (connection errors, timeouts, 429, 5xx) are retried with capped,
jittered exponential backoff; 401/403 are not retried and are logged once per client,
because they mean "revoked or not allowed" and repeating them helps nobody.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from incluster import context, contract
from incluster.errors import ContextError

log = logging.getLogger("incluster.client")

#: (connect, read) seconds for one HTTP attempt.
DEFAULT_TIMEOUT: Final = (3.0, 10.0)
DEFAULT_RETRIES: Final = 3
#: Never wait longer than this between two attempts, whatever Retry-After says.
MAX_BACKOFF_SECONDS: Final = 10.0

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


class ClientError(Exception):
    """Base of the client's errors; the message says what failed and what to do."""


class TokenFileError(ClientError):
    """The mounted token (or CA) file is missing or unreadable."""


class UnreachableError(ClientError):
    """The API did not answer (connection refused, DNS, timeout) after the retries."""


class ApiError(ClientError):
    """The API answered with an error status."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.method = method
        self.path = path


class AuthError(ApiError):
    """401/403: the token was revoked, expired, or does not allow this call."""


@dataclass(frozen=True)
class Reference:
    """A referenced experiment as this pod may see it: its status and outputs path."""

    name: str
    status: dict[str, Any]
    outputs_path: str | None


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ContextError(
            f"{what} {value!r} is not a Kubernetes object name (lowercase letters, digits, "
            "'-' and '.'); it comes from the experiment info the operator provides"
        )
    return value


def _default_base_url() -> str:
    url = os.environ.get(contract.ENV_API_URL)
    if url:
        return url.rstrip("/")
    host = os.environ.get(contract.ENV_KUBERNETES_SERVICE_HOST)
    port = os.environ.get(contract.ENV_KUBERNETES_SERVICE_PORT) or "443"
    if not host:
        raise ContextError(
            f"no Kubernetes API address: {contract.ENV_KUBERNETES_SERVICE_HOST} is unset "
            f"(Kubernetes sets it in every pod; set {contract.ENV_API_URL} to override)"
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"https://{host}:{port}"


def _check_url(url: str) -> str:
    """Refuse URLs that would send the bearer token in clear text off this machine."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ContextError(
            f"API URL {url!r} must look like https://host:port (from {contract.ENV_API_URL} "
            f"or {contract.ENV_KUBERNETES_SERVICE_HOST})"
        )
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ContextError(
            f"API URL {url!r} is plain HTTP to another machine: the token would travel in "
            "clear text; use https (plain http is for a local dev cluster only)"
        )
    return url


class Client:
    """Read and patch this pod's Experiment; read the experiments it references.

    Every argument defaults to the pod's context: the token and CA under
    ``<context dir>/token/``, the API address from the standard in-cluster env, the
    experiment's name and namespace from the experiment info. Construction does no I/O;
    a missing token file is reported (``TokenFileError``) by the first call.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        namespace: str | None = None,
        base_url: str | None = None,
        token_path: str | os.PathLike[str] | None = None,
        ca_path: str | os.PathLike[str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.25,
    ) -> None:
        if name is None or namespace is None:
            info = context.get_experiment_info()
            name = name or info.get(contract.INFO_EXPERIMENT_NAME)
            namespace = namespace or info.get(contract.INFO_NAMESPACE)
        self.name = _check_name("experiment name", name)
        self.namespace = _check_name("namespace", namespace)
        if token_path is None or (ca_path is None and base_url is None):
            directory = context.context_dir()
            if directory is None:
                raise ContextError(
                    "no in-cluster context (INCLUSTER_CONTEXT_DIR unset and nothing mounted "
                    f"at {contract.DEFAULT_CONTEXT_DIR}): the API client needs the token the "
                    "operator mounts there"
                )
            token_dir = directory / contract.DIR_TOKEN
            token_path = token_path or token_dir / contract.FILE_TOKEN
            ca_path = ca_path or token_dir / contract.FILE_CA
        self.base_url = _check_url((base_url or _default_base_url()).rstrip("/"))
        self.token_path = Path(token_path)
        self.ca_path = Path(ca_path) if ca_path is not None else None
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._session = requests.Session()
        self._token_key: tuple[int, int, int] | None = None
        self._token = ""
        self._reported: set[int] = set()

    # --- the token file -------------------------------------------------------------------
    def token(self) -> str:
        """The current bearer token, re-read when the file changed (refresh by the operator)."""
        try:
            st = self.token_path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if key != self._token_key:
                token = self.token_path.read_text(encoding="ascii").strip()
                if not token:
                    raise TokenFileError(
                        f"the API token file {self.token_path} is empty: the operator has not "
                        "stored a token yet; look at the experiment's events"
                    )
                self._token, self._token_key = token, key
        except FileNotFoundError:
            raise TokenFileError(
                f"the API token file {self.token_path} does not exist: the operator mounts it "
                f"at <context dir>/{contract.DIR_TOKEN}/{contract.FILE_TOKEN}; outside a "
                "cluster there is no API client"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(
                f"the API token file {self.token_path} is unreadable: {exc}"
            ) from None
        return self._token

    def _verify(self) -> bool | str:
        if not self.base_url.startswith("https://"):
            return True
        if self.ca_path is None:
            return True  # the system trust store (an explicit base_url without a CA file)
        if not self.ca_path.is_file():
            raise TokenFileError(
                f"the cluster CA file {self.ca_path} does not exist: the operator projects it "
                "from the kube-root-ca.crt ConfigMap beside the token"
            )
        return str(self.ca_path)

    # --- HTTP -----------------------------------------------------------------------------
    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None and (after := response.headers.get("Retry-After")):
            try:
                seconds = float(after)
            except ValueError:
                try:
                    seconds = email.utils.parsedate_to_datetime(after).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = 0.0
            return min(max(seconds, 0.0), MAX_BACKOFF_SECONDS)
        ceiling = min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS)
        return random.uniform(ceiling / 2, ceiling)

    def _report_once(self, status: int, method: str, path: str) -> None:
        if status in self._reported:
            return
        self._reported.add(status)
        what = "rejected the token (401)" if status == 401 else "denied the call (403)"
        log.warning(
            "the Kubernetes API %s for %s %s: the experiment's token was revoked or expired "
            "(the experiment finished?) or its Role does not allow this; further %s answers "
            "from this client are not logged",
            what,
            method,
            path,
            status,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API call with retries; returns the decoded JSON object."""
        data = (
            None
            if body is None
            else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        )
        url = self.base_url + path
        failure = ""
        retry_response: requests.Response | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt - 1, retry_response))
            headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            try:
                response = self._session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self._verify(),
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure, retry_response = f"{type(exc).__name__}: {exc}", None
                continue
            status = response.status_code
            if status in _RETRYABLE:
                failure, retry_response = f"HTTP {status}", response
                continue
            if status in (401, 403):
                self._report_once(status, method, path)
                raise AuthError(status, method, path, _message(response))
            if status >= 400:
                raise ApiError(status, method, path, _message(response))
            try:
                decoded = response.json()
            except ValueError:
                raise ApiError(status, method, path, "the answer is not JSON") from None
            if not isinstance(decoded, dict):
                raise ApiError(status, method, path, "the answer is not a JSON object")
            return decoded
        tries = self.retries + 1
        if retry_response is not None:
            raise ApiError(
                retry_response.status_code,
                method,
                path,
                f"{_message(retry_response)} (still failing after {tries} tries)",
            )
        raise UnreachableError(
            f"{method} {url}: the Kubernetes API did not answer after {tries} tries ({failure})"
        )

    def _path(self, name: str, subresource: str = "") -> str:
        base = (
            f"/apis/{contract.API_GROUP}/{contract.API_VERSION}/namespaces/"
            f"{quote(self.namespace, safe='')}/{contract.PLURAL}/{quote(name, safe='')}"
        )
        return f"{base}/{subresource}" if subresource else base

    # --- the three things a pod may do ----------------------------------------------------
    def get_experiment(self) -> dict[str, Any]:
        """This pod's Experiment object."""
        return self.request("GET", self._path(self.name))

    def patch_status(self, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch this Experiment's status (``{"tracking": ...}`` etc.)."""
        return self.request(
            "PATCH",
            self._path(self.name, "status"),
            {"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    def get_reference(self, name: str) -> Reference:
        """A referenced experiment (one named in this experiment's ``outputsRefs``)."""
        _check_name("referenced experiment name", name)
        obj = self.request("GET", self._path(name))
        status = obj.get("status") or {}
        outputs = status.get(contract.STATUS_OUTPUTS_PATH)
        return Reference(
            name=name,
            status=dict(status),
            outputs_path=outputs if isinstance(outputs, str) else None,
        )

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.reason
