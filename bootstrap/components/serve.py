"""``bootstrap serve-manifests``: the control-plane pods as a v1 PodList over HTTP.

For kubelets configured with ``--manifest-url`` / ``staticPodURL`` instead of a directory (as
Talos does). The pods are rendered from the same templates as the ``manifests`` phase, and
rendered again whenever the config file changes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bootstrap.config.hostport import split_host_port
from bootstrap.errors import BootstrapError, UsageError


def parse_listen(value: str) -> tuple[str, int]:
    try:
        host, port = split_host_port(value)
    except ValueError:
        host, port = "", None
    # Port 0 is allowed here: the system picks a free one.
    if port is None or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen: {value!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


class PodListSource:
    """Renders the PodList, again only when the config file's modification time changes."""

    def __init__(self, render: Callable[[], list[dict[str, Any]]], config_file: Path | None) -> None:
        self._render = render
        self._config_file = config_file
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._body: bytes = b""
        self.last_error: str | None = None

    def _config_stamp(self) -> float:
        if self._config_file is None:
            return 0.0
        try:
            return self._config_file.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return -1.0

    def body(self) -> bytes:
        with self._lock:
            stamp = self._config_stamp()
            if stamp != self._stamp or not self._body:
                try:
                    items = self._render()
                except BootstrapError as exc:
                    # Keep serving the last good pods: a typo in the config must not stop the
                    # control plane. The error is logged and exposed at /healthz.
                    self.last_error = exc.format_message()
                    if not self._body:
                        raise
                else:
                    document = {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
                    self._body = json.dumps(document, indent=2).encode()
                    self.last_error = None
                self._stamp = stamp
            return self._body


def make_server(
    host: str, port: int, source: PodListSource, log: Callable[[str], None]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/healthz":
                problem = source.last_error
                self._send(500 if problem else 200, (problem or "ok").encode(), "text/plain")
                return
            try:
                body = source.body()
            except BootstrapError as exc:
                self._send(500, exc.format_message().encode(), "text/plain")
                return
            self._send(200, body, "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log(format % args)

    return ThreadingHTTPServer((host, port), Handler)
