"""Object stores (``s3://``, ``gs://``, ``az://``) through fsspec: open, classify, read back.

Why fsspec: one API over S3 (s3fs), GCS (gcsfs) and Azure (adlfs), each of which finds
credentials the standard way for its cloud (env variables, config files, workload
identity). This module is imported only when a URL is used: ``import incluster`` and
``from incluster import tracking`` never pay for fsspec, aiobotocore or their event loop.

Why the short timeouts: a store that is down must cost the training process nothing
and the uploader thread a few seconds, not botocore's default minute per attempt.

Event files in a store: object stores cannot append, so the uploader writes each new
stretch of whole lines as its own object,
``<url>/events/<replica>/<incarnation>-<offset>.jsonl`` (docs/tracking.md). An
incarnation is one life of the local file (a recreated pod starts a new one); reading
the objects of a replica in name order gives its lines in the order they were written.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any, Final

from incluster.contract import DIR_EVENTS, EVENTS_SUFFIX

#: URL scheme -> (fsspec protocol, the extra that installs it).
SCHEMES: Final = {
    "s3": ("s3", "s3"),
    "gs": ("gs", "gcs"),
    "gcs": ("gs", "gcs"),
    "az": ("az", "azure"),
    "abfs": ("abfs", "azure"),
    "abfss": ("abfs", "azure"),
}

#: Options that keep an unreachable S3 endpoint from stalling the uploader for minutes.
_S3_OPTIONS: Final = {
    "config_kwargs": {
        "connect_timeout": 5,
        "read_timeout": 60,
        "retries": {"max_attempts": 2, "mode": "standard"},
    },
}


class StoreError(Exception):
    """A store operation failed; ``kind`` groups failures so each kind is reported once."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_url(path: object) -> bool:
    """True for ``scheme://...`` with a scheme this module knows (not a local path)."""
    if not isinstance(path, str):
        return False
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme in SCHEMES


def join(url: str, *parts: str) -> str:
    """``url/part/...`` with single slashes (object keys never hold '.' or '..' parts)."""
    return posixpath.join(url.rstrip("/"), *(p.strip("/") for p in parts if p))


def filesystem(url: str) -> Any:
    """A fresh fsspec filesystem for ``url``'s store, credentials from the environment.

    Raises StoreError("missing") naming the extra to install when the implementation
    (s3fs, gcsfs, adlfs) is not there.
    """
    scheme = url.partition("://")[0]
    if scheme not in SCHEMES:
        raise StoreError("url", f"{url!r} is not an s3://, gs:// or az:// URL")
    protocol, extra = SCHEMES[scheme]
    try:
        import concurrent.futures.thread  # noqa: F401 - registers its exit hook now, not at exit

        import fsspec

        options: dict[str, Any] = {"skip_instance_cache": True}
        if protocol == "s3":
            options.update(_S3_OPTIONS)
        fs = fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise StoreError(
            "missing",
            f"{scheme}:// needs an fsspec implementation that is not installed ({exc}); "
            f"install it in the image: pip install 'incluster[{extra}]'",
        ) from None
    if protocol == "s3":
        fs.retries = 2  # s3fs's own retry loop on top of botocore's (default 5)
    return fs


def classify(exc: BaseException, url: str) -> StoreError:
    """One clear message per kind of failure, naming what to check."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc) or type(exc).__name__
    bucket = url.partition("://")[2].split("/", 1)[0]
    if isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
        return StoreError(
            "bucket",
            f"the bucket {bucket!r} of {url} does not exist ({text}); create it or fix the "
            "outputs URL (the operator's INCLUSTER_OPERATOR_OUTPUTS_URL, or --outputs)",
        )
    if isinstance(exc, PermissionError):
        return StoreError(
            "credentials",
            f"the store refused this pod's credentials for {url} ({text}); check the pod's "
            "own AWS_*/GOOGLE_*/AZURE_* variables or its workload identity (the operator "
            "never provides credentials)",
        )
    name = type(exc).__name__
    if isinstance(exc, RuntimeError) and "shutdown" in text:
        return StoreError("shutdown", f"the interpreter is exiting, too late to upload ({text})")
    if isinstance(exc, ConnectionError | TimeoutError) or "Connect" in name or "Endpoint" in name:
        return StoreError("unreachable", f"the store of {url} cannot be reached ({name}: {text})")
    return StoreError("failed", f"{name}: {text}")


def put_files(fs: Any, local: list[str], urls: list[str]) -> None:
    """Upload files to their URLs in one call (concurrent in async stores such as s3fs)."""
    if local:
        fs.put(local, urls)


def put_bytes(fs: Any, url: str, data: bytes) -> None:
    fs.pipe_file(url, data)


def segment_name(incarnation: str, offset: int) -> str:
    """``<incarnation>-<offset>.jsonl``: name order is write order within a replica."""
    return f"{incarnation}-{offset:016d}{EVENTS_SUFFIX}"


def event_segments(url: str) -> dict[str, list[str]]:
    """Replica name -> its event objects under ``url`` (an outputs URL), in write order."""
    fs = filesystem(url)
    root = join(url, DIR_EVENTS)
    try:
        found = fs.find(root)
    except Exception as exc:
        raise classify(exc, url) from None
    protocol = url.partition("://")[0]
    prefix = root.partition("://")[2].rstrip("/") + "/"
    replicas: dict[str, list[str]] = {}
    for key in sorted(found):
        rest = key[len(prefix) :] if key.startswith(prefix) else ""
        replica, sep, name = rest.partition("/")
        if sep and name.endswith(EVENTS_SUFFIX) and "/" not in name:
            replicas.setdefault(replica, []).append(f"{protocol}://{key}")
    return replicas


def read_bytes(url: str, fs: Any | None = None) -> bytes:
    store = fs if fs is not None else filesystem(url)
    try:
        data: bytes = store.cat_file(url)
    except Exception as exc:
        raise classify(exc, url) from None
    return data


def read_lines(objects: list[str]) -> Iterator[bytes]:
    """The lines of a replica's segments, in order (each segment holds whole lines)."""
    if not objects:
        return
    fs = filesystem(objects[0])
    for url in objects:
        yield from read_bytes(url, fs).splitlines(keepends=True)
