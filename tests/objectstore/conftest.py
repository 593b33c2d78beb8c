"""Fixtures for the object-store tests: a real S3 server (moto's) on loopback, via s3fs.

One server per test session (per xdist worker); each test gets a bucket of its own and
an environment holding only the standard AWS variables pointing at the server, the way
a pod's own environment would. Nothing in incluster is patched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from incluster import contract, tracking

from devcluster import s3server


@pytest.fixture(scope="session")
def s3() -> Iterator[s3server.S3Server]:
    server = s3server.start()
    yield server
    server.stop()


def _point_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    for name in s3server.AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3server.client_env(endpoint).items():
        monkeypatch.setenv(name, value)


def new_bucket(endpoint: str) -> str:
    """Create a bucket with a unique name through s3fs (as an admin would, beforehand)."""
    import s3fs

    name = f"b-{uuid.uuid4().hex[:16]}"
    fs = s3fs.S3FileSystem(
        key=s3server.ACCESS_KEY,
        secret=s3server.SECRET_KEY,
        endpoint_url=endpoint,
        skip_instance_cache=True,
    )
    fs.mkdir(name)
    return name


@pytest.fixture
def bucket(s3: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; the process env points the standard AWS variables at the server."""
    _point_at(monkeypatch, s3.endpoint)
    return new_bucket(s3.endpoint)


def store_fs() -> Any:
    """An s3fs client as a reader would build one (credentials from the env)."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


@pytest.fixture
def clean_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No run context in env; returns a local outputs path under tmp_path."""
    for name in list(os.environ):
        if name.startswith((contract.ENV_PREFIX, "POLYAXON_")) or name == contract.ENV_TF_CONFIG:
            monkeypatch.delenv(name)
    tracking.end()
    return tmp_path / "outputs"


@pytest.fixture(autouse=True)
def _end_default_run() -> Iterator[None]:
    yield
    tracking.end()
