"""The client of the operator's report API: this pod's experiment, its references, its summary.

Why not the Kubernetes API: pods hold no Kubernetes credential from incluster. Each pod
has one credential, a projected token of its own ServiceAccount for the report API's
audience, as a file in the context directory; the operator checks it (TokenReview) and
derives experiment and replica from the pod, so a pod can neither rewrite its Experiment
nor speak for another. The API's address and CA bundle come with the context
(``context.json`` and ``report-ca.crt``); the connection is verified against that CA.

The token file is re-read whenever its mtime, size or inode changes (the kubelet rotates
it). Transient faults (connection errors, timeouts, 429, 5xx) are retried with capped,
jittered exponential backoff honouring Retry-After; 401/403 are not retried and are logged
once per client. Why not the ``kubernetes`` package: seconds of import time and megabytes
in every training image for three calls.
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
            "'-' and '.')"
        )
    return value


def _check_url(url: str) -> str:
    """Refuse URLs that would send the token in clear text off this machine."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ContextError(
            f"report API URL {url!r} must look like https://host:port (context.json key "
            f"{contract.KEY_REPORT_URL!r})"
        )
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ContextError(
            f"report API URL {url!r} is plain HTTP to another machine: the token would travel "
            "in clear text; use https"
        )
    return url


def _no_context() -> ContextError:
    return ContextError(
        "there is no in-cluster context (INCLUSTER_CONTEXT_DIR is unset and nothing is "
        f"mounted at {contract.DEFAULT_CONTEXT_DIR}): the operator's report API client exists "
        "only in a pod of an Experiment; outside one, tracking writes the event files alone"
    )


class Client:
    """Read this pod's Experiment and its references; report the tracking summary.

    Every argument defaults to the pod's context: the API's URL from ``context.json``,
    its CA bundle and the token from the context directory. Construction does no I/O
    beyond reading the context; a missing token file is reported by the first call.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token_path: str | os.PathLike[str] | None = None,
        ca_path: str | os.PathLike[str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.25,
    ) -> None:
        if base_url is None or token_path is None or ca_path is None:
            directory = context.context_dir()
            if directory is None:
                raise _no_context()
            document = context.document() or {}
            url = base_url or document.get(contract.KEY_REPORT_URL)
            if not isinstance(url, str) or not url:
                raise ContextError(
                    f"the context in {directory} names no report API ({contract.FILE_CONTEXT} "
                    f"has no {contract.KEY_REPORT_URL!r}): this run has no operator to report "
                    "to (`incluster run`?); the event files are the record"
                )
            base_url = url
            token_path = token_path or directory / contract.DIR_TOKEN / contract.FILE_TOKEN
            ca_path = ca_path or directory / contract.FILE_REPORT_CA
        self.base_url = _check_url(base_url.rstrip("/"))
        self.token_path = Path(token_path)
        self.ca_path = Path(ca_path)
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
                        f"the token file {self.token_path} is empty: the kubelet has not "
                        "written the pod's projected token yet"
                    )
                self._token, self._token_key = token, key
        except FileNotFoundError:
            raise TokenFileError(
                f"the token file {self.token_path} does not exist: the pod's projected token "
                f"is mounted at <context dir>/{contract.DIR_TOKEN}/{contract.FILE_TOKEN}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"the token file {self.token_path} is unreadable: {exc}") from None
        return self._token

    def _verify(self) -> bool | str:
        if not self.base_url.startswith("https://"):
            return True
        if not self.ca_path.is_file():
            raise TokenFileError(
                f"the report API's CA bundle {self.ca_path} does not exist: the operator puts "
                f"it in the context ConfigMap as {contract.FILE_REPORT_CA}"
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
            "the operator's report API %s for %s %s: the pod's token expired or its pod is "
            "gone, or this replica may not do this (only the reporter replica reports); "
            "further %s answers from this client are not logged",
            what,
            method,
            path,
            status,
        )

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
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
                headers["Content-Type"] = "application/json"
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
            f"{method} {url}: the report API did not answer after {tries} tries ({failure})"
        )

    # --- the three things a pod may do ----------------------------------------------------
    def get_experiment(self) -> dict[str, Any]:
        """This pod's Experiment: ``metadata`` (name, namespace, uid), ``spec``, ``status``."""
        return self.request("GET", contract.REPORT_PATH_EXPERIMENT)

    def get_reference(self, name: str) -> Reference:
        """A referenced experiment (one named in this experiment's ``outputsRefs``)."""
        _check_name("referenced experiment name", name)
        obj = self.request("GET", f"{contract.REPORT_PATH_REFERENCES}/{quote(name, safe='')}")
        status = obj.get("status") or {}
        outputs = obj.get(contract.STATUS_OUTPUTS_PATH)
        return Reference(
            name=name,
            status=dict(status) if isinstance(status, dict) else {},
            outputs_path=outputs if isinstance(outputs, str) else None,
        )

    def report_tracking(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Send the bounded tracking summary; the operator folds it into ``status.tracking``.

        Only the reporter replica (chief/master 0, else worker 0) is accepted.
        """
        return self.request(
            "PUT", contract.REPORT_PATH_TRACKING, {contract.STATUS_TRACKING: dict(document)}
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
