"""The kubelet's log endpoint, so `kubectl logs` works against the real control plane.

kube-apiserver proxies `kubectl logs` to ``https://<node InternalIP>:<kubelet port>
/containerLogs/<namespace>/<pod>/<container>`` with its kubelet client certificate. This
serves the pod runner's log files there, over TLS, to clients whose certificate the
cluster's CA signed (the API server's), and to nobody else.
"""

from __future__ import annotations

import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from devcluster import pki

#: Namespaces, pods and containers are DNS names: anything else never becomes a path.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_PATH = re.compile(r"^/containerLogs/([^/]+)/([^/]+)/([^/]+)$")
FOLLOW_INTERVAL = 0.2


def find_log(root: Path, namespace: str, pod: str, container: str) -> Path | None:
    """The newest log of ``container`` in a pod of that name (a recreated pod is newer)."""
    if not all(_NAME.match(n) for n in (namespace, pod, container)):
        return None
    candidates = [
        d / "logs" / f"{container}.log" for d in (root / "pods" / namespace).glob(f"{pod}-*")
    ]
    candidates = [c for c in candidates if c.parent.parent.name.rsplit("-", 1)[0] == pod]
    existing = [c for c in candidates if c.is_file()]
    return max(existing, key=lambda c: c.stat().st_mtime, default=None)


def tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    if lines <= 0:
        return b""
    return b"".join(data.splitlines(keepends=True)[-lines:])


class LogServer:
    """``start()`` returns the port; ``running(namespace, pod)`` tells ``follow`` when to end."""

    def __init__(
        self,
        root: Path,
        client_ca: str,
        running: Callable[[str, str], bool],
        host: str = "127.0.0.1",
    ) -> None:
        self.root = root
        self.running = running
        folder = Path(tempfile.mkdtemp(prefix="devcluster-kubelet-"))
        serving = pki.authority(folder).issue(
            "kubelet", "devcluster-kubelet", server=True, hosts=("localhost", host)
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(serving.cert), str(serving.key))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubelet-logs", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> int:
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the runner logs enough
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                match = _PATH.match(url.path)
                if match is None:
                    self.send_error(HTTPStatus.NOT_FOUND, "only /containerLogs is served")
                    return
                namespace, pod, container = match.groups()
                log = find_log(server.root, namespace, pod, container)
                if log is None:
                    self.send_error(HTTPStatus.NOT_FOUND, f"no log of {pod}/{container}")
                    return
                query = parse_qs(url.query)
                lines = query.get("tailLines", [None])[0]
                follow = query.get("follow", ["false"])[0] == "true"
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                with log.open("rb") as f:
                    self.wfile.write(tail(f.read(), int(lines) if lines else None))
                    while follow:
                        chunk = f.read()
                        if chunk:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        elif not server.running(namespace, pod):
                            return
                        else:
                            time.sleep(FOLLOW_INTERVAL)

        return Handler
