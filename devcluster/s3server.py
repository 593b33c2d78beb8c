"""A real S3 server on loopback for tests and benchmarks: moto's standalone server.

Why a process and not a mock: the SDK's uploads go through s3fs, aiobotocore and HTTP
exactly as they do against AWS or MinIO; only the server is local. Nothing in our code
is patched. ``Forwarder`` sits between the client and the server so a test can take
the store down (connections refused) and bring it back on the same address without
losing the server's contents.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from devcluster.polling import poll

#: Credentials the local server accepts (any pair does, unless auth is enforced).
ACCESS_KEY = "incluster-test"
SECRET_KEY = "incluster-test-secret"  # noqa: S105 - a local test server's
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class S3Server:
    """A running moto server; ``endpoint`` is its http://127.0.0.1:PORT."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(*, enforce_auth: bool = False, timeout: float = 60.0) -> S3Server:
    """Start moto's server on a free loopback port and wait until it answers.

    ``enforce_auth`` makes it check credentials from the first request on (moto's
    ``INITIAL_NO_AUTH_ACTION_COUNT=0``): every key is then unknown to it, which is how a
    store answers wrong credentials.
    """
    port = free_port()
    env = dict(os.environ)
    if enforce_auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    server = S3Server(process, port)
    try:
        poll(lambda: process.poll() is not None or _accepts(port), timeout, "the S3 server")
        if process.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited with {process.returncode}")
    except BaseException:
        server.stop()
        raise
    return server


def client_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables that point any S3 client (s3fs, boto3) at ``endpoint``."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
    }


#: AWS variables a developer's shell may hold; cleared so tests reach only the local server.
AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set env variables for a block (benchmarks; tests use monkeypatch)."""
    saved = {k: os.environ.get(k) for k in [*values, *AWS_ENV_TO_CLEAR]}
    for key in AWS_ENV_TO_CLEAR:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Forwarder:
    """A TCP forwarder on a loopback port of its own, to take a store down and back up.

    ``down()`` closes the listener and every open connection (clients then get
    ECONNREFUSED, as from a store that is gone); ``up()`` listens on the same port again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            a.close()
            b.close()
