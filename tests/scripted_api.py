"""A plain-HTTP API server that answers from a script, for failures the full stand-in never produces
on demand (503, 429, 401, a 403 that stays, an object deleted between two calls).

Each request takes the next scripted answer whose method matches; the last answer for a method
repeats once the script runs out. Loopback only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, status: int, message: str = "scripted failure") -> Answer:
        return cls(status, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message})


@dataclass
class ScriptedApi:
    script: dict[str, list[Answer]]  # method -> answers in order
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def answer(self, method: str, path: str) -> Answer:
        self.requests.append((method, path))
        answers = self.script[method]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server (plain HTTP: no CA, no client certificate)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "scripted", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "scripted", "context": {"cluster": "scripted", "user": "tester"}}],
            "current-context": "scripted",
        }
        path.write_text(yaml.safe_dump(doc))
        return path


def _handler(api: ScriptedApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _respond(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answer = api.answer(self.command, self.path)
            body = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _respond

    return Handler


@contextmanager
def serving(api: ScriptedApi) -> Iterator[ScriptedApi]:
    """Serve ``api`` on ``api.port`` (0: any free port, written back)."""
    server = ThreadingHTTPServer(("127.0.0.1", api.port), _handler(api))
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
