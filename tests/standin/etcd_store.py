"""The API stand-in's objects in a real etcd, as kube-apiserver keeps them: several stand-ins on one
etcd share one state, as the API servers of an HA control plane do.

:class:`EtcdStore` is a :class:`~tests.standin.store.Store` (same validation and defaulting) whose
persistence is etcd's v3 API through its JSON gRPC gateway (``POST /v3/kv/range``, ``/v3/kv/txn``,
``/v3/watch``) over TLS verified against the etcd CA, with the client certificate the kube-apiserver
manifest names (``--etcd-servers``, ``--etcd-cafile``, ``--etcd-certfile``, ``--etcd-keyfile``):

* an object is the JSON of its body at ``/registry/<resource>/<namespace>/<name>`` (cluster-scoped:
  ``/registry/<resource>/<name>``; the real server's few special prefixes, such as ``minions`` for
  nodes, are not copied), stored without ``resourceVersion``: the resourceVersion is the key's
  ``mod_revision``, so every API server sharing the etcd reports the same one;
* every write is one transaction guarded by what it read: a create requires the key's
  ``create_revision`` to be 0 (else ``409 AlreadyExists``), an update or delete requires the
  ``mod_revision`` it read (else the write is redone from a fresh read, or is a ``409 Conflict`` when
  the client pinned a resourceVersion), like two real kube-apiservers on one etcd;
* one background etcd watch over the whole key space (so the store's revision follows etcd's exactly)
  feeds ``objects``, the event log and ``cond``: every list/watch path of the API stand-in works
  unchanged on that cache. A write returns once the watch has applied its revision (read your
  writes); a client's GET reads etcd, a client's LIST first waits until the cache has reached etcd's
  current revision (as the real server's consistent reads from its watch cache do); the server's own
  reads (authentication, authorization, controllers) use the cache, as the real server's informers
  do. ``health()`` (the API server's ``etcd`` check in ``/livez``, ``/readyz``) fails while the watch
  is down or etcd does not answer a linearizable read. The local event
  log starts when the store does (a watch from before that gets ``410 Gone``, as a real server's
  watch cache does after a restart) and is compacted as the in-memory store's is;
* in a network namespace (a multi-node test) every socket to etcd is made inside the node's
  namespace: ``127.0.0.1:2379`` is the node's own loopback.

:class:`ApiServerOnEtcd` is the kube-apiserver "process" the kubelet stand-in runs on such a store:
it starts at once, waits (bounded, retrying) in its own thread until etcd answers, then serves.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.netns import enter_for_good, entered
from tests.standin.apiserver import ApiServerStandin, manifest_flags
from tests.standin.store import (
    RESOURCES,
    ApiError,
    Obj,
    Resource,
    StaleRead,
    Store,
    already_exists,
    namespace_resource,
)

PREFIX = "/registry/"
CONNECT_WAIT = 60.0  # how long an API server waits for etcd to answer before it gives up (exits)
CONNECT_RETRY = 0.1
REQUEST_TIMEOUT = 5.0  # every call to etcd but the watch stream
HEALTH_TIMEOUT = 2.0  # the API server's etcd health check
APPLY_TIMEOUT = 10.0  # a write waits this long for the watch to bring its revision back
WATCH_RETRY = 0.2  # after a broken watch stream, a new one from the last applied revision
IDLE_CONNECTIONS = 8
_BY_NAME = {res.name: res for res in RESOURCES}


class EtcdUnavailable(OSError):
    """etcd could not be reached or refused a request (what the API server reports as 503)."""


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with ``prefix`` (its last byte plus one)."""
    raw = prefix.encode()
    return _b64(raw[:-1] + bytes([raw[-1] + 1]))


def etcd_key(res: Resource, namespace: str, name: str) -> str:
    if res.namespaced:
        return f"{PREFIX}{res.name}/{namespace}/{name}"
    return f"{PREFIX}{res.name}/{name}"


def parse_key(key: str) -> tuple[Resource, str, str] | None:
    """(resource, namespace, name) of an object key; None for any other key."""
    if not key.startswith(PREFIX):
        return None
    parts = key[len(PREFIX) :].split("/")
    res = _BY_NAME.get(parts[0])
    if res is None:
        return None
    if res.namespaced and len(parts) == 3:
        return res, parts[1], parts[2]
    if not res.namespaced and len(parts) == 2:
        return res, "", parts[1]
    return None


class _Connection(http.client.HTTPSConnection):
    """A keep-alive HTTPS connection to etcd whose socket is made inside ``netns`` when one is given
    (a socket belongs to the namespace it was made in, whichever thread uses it later)."""

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, timeout: float | None, netns: str | None
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        with contextlib.nullcontext() if self.netns is None else entered(self.netns):
            super().connect()


class EtcdGateway:
    """JSON calls to etcd's v3 gRPC gateway at ``url``, from a small pool of keep-alive connections."""

    def __init__(self, url: str, *, ca: Path, cert: Path, key: Path, netns: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"etcd server {url!r}: an https:// URL is required")
        self.url = url
        self.host, self.port = parts.hostname, parts.port or 2379
        self.netns = netns
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(cert), str(key))
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def _connection(self, timeout: float | None) -> _Connection:
        return _Connection(self.host, self.port, self.context, timeout, self.netns)

    def call(self, method: str, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        """``POST /v3/<method>`` with ``body``; the decoded answer, or :class:`EtcdUnavailable`."""
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in range(2):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            conn = conn or self._connection(timeout)
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request("POST", f"/v3/{method}", body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # etcd closed an idle connection before reading the request: say it again
                raise EtcdUnavailable(f"etcd {self.url}: {exc or type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise EtcdUnavailable(f"etcd {self.url}: {exc or type(exc).__name__}") from exc
            with self._lock:
                if len(self._idle) < IDLE_CONNECTIONS and not response.will_close:
                    self._idle.append(conn)
                else:
                    conn.close()
            try:
                answer = json.loads(data or b"{}")
            except ValueError as exc:
                raise EtcdUnavailable(f"etcd {self.url} {method}: not JSON: {data[:200]!r}") from exc
            if response.status != 200 or not isinstance(answer, dict):
                message = answer.get("message") if isinstance(answer, dict) else None
                raise EtcdUnavailable(
                    f"etcd {self.url} {method}: HTTP {response.status}: {message or data!r}"
                )
            return answer
        raise AssertionError("unreachable")

    def open_watch(self, request: dict[str, Any]) -> tuple[_Connection, http.client.HTTPResponse]:
        """A watch stream: its connection (close it to end the stream) and the streamed response,
        one JSON message a line."""
        conn = self._connection(REQUEST_TIMEOUT)
        try:
            conn.request(
                "POST",
                "/v3/watch",
                body=json.dumps({"create_request": request}).encode(),
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            if response.status != 200:
                raise EtcdUnavailable(f"etcd {self.url} watch: HTTP {response.status}: {response.read()!r}")
            assert conn.sock is not None
            conn.sock.settimeout(None)  # events come when they come; stop() shuts the socket down
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise EtcdUnavailable(f"etcd {self.url} watch: {exc or type(exc).__name__}") from exc
        return conn, response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _decode(kv: dict[str, Any]) -> Obj:
    """The object a key-value holds, with its ``mod_revision`` as resourceVersion."""
    obj = json.loads(base64.b64decode(kv.get("value", "")))
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        raise ValueError("not an object")
    obj["metadata"]["resourceVersion"] = str(kv["mod_revision"])
    return obj


def _encode(obj: Obj) -> str:
    """What is stored: the object without its resourceVersion (etcd's revision is the one)."""
    body = copy.deepcopy(obj)
    body["metadata"].pop("resourceVersion", None)
    return _b64(json.dumps(body, separators=(",", ":")))


class EtcdStore(Store):
    """See the module docstring. Nothing talks to etcd before :meth:`start`."""

    def __init__(self, url: str, *, ca: Path, cert: Path, key: Path, netns: str | None = None) -> None:
        self.gateway = EtcdGateway(url, ca=ca, cert=cert, key=key, netns=netns)
        self.netns = netns
        self.watch_error: str | None = None  # why the last watch stream ended (test diagnostics)
        self._stopping = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._watch_conn: _Connection | None = None
        super().__init__()

    def __post_init__(self) -> None:
        self.cond = threading.Condition(self.lock)  # the default namespaces wait for start()

    @classmethod
    def for_apiserver(cls, pod: dict[str, Any], rootfs: Path, *, netns: str | None = None) -> EtcdStore:
        """From the kube-apiserver static pod's ``--etcd-*`` flags (host paths under ``rootfs``); the
        first of ``--etcd-servers`` is used."""
        flags = manifest_flags(pod, "kube-apiserver")
        missing = [
            f"--{f}"
            for f in ("etcd-servers", "etcd-cafile", "etcd-certfile", "etcd-keyfile")
            if not flags.get(f)
        ]
        if missing:
            raise ValueError(f"kube-apiserver manifest: no {', '.join(missing)}")

        def host_path(flag: str) -> Path:
            return Path(rootfs) / flags[flag].lstrip("/")

        return cls(
            flags["etcd-servers"].split(",")[0],
            ca=host_path("etcd-cafile"),
            cert=host_path("etcd-certfile"),
            key=host_path("etcd-keyfile"),
            netns=netns,
        )

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, wait: float = CONNECT_WAIT) -> None:
        """Wait (at most ``wait`` seconds, retrying) until etcd answers; load the objects; start the
        watch; make the default namespaces if this is the first server on this etcd."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self._load()
                break
            except EtcdUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise EtcdUnavailable(f"etcd did not answer within {wait:g}s: {exc}") from exc
                if self._stopping.wait(CONNECT_RETRY):
                    raise EtcdUnavailable("stopped while waiting for etcd") from exc
        with self.lock:
            if self._stopping.is_set():
                raise EtcdUnavailable("stopped while starting")
            self._watch_thread = threading.Thread(
                target=self._watch_loop, name=f"etcd-store-watch:{self.gateway.url}", daemon=True
            )
            self._watch_thread.start()
        self.ensure_default_namespaces()

    def stop(self) -> None:
        """End the watch and close every connection to etcd (the objects stay in etcd); a
        :meth:`start` still waiting for etcd gives up."""
        with self.lock:
            self._stopping.set()
            conn = self._watch_conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=5)
            self._watch_thread = None
        self.gateway.close()

    def _load(self) -> None:
        """Every object as of etcd's current revision; the event log starts there."""
        answer = self._range_all()
        revision = int(answer["header"]["revision"])
        objects: dict[tuple[Resource, str, str], Obj] = {}
        for kv in answer.get("kvs") or []:
            parsed = parse_key(base64.b64decode(kv["key"]).decode(errors="replace"))
            if parsed is None:
                continue
            with contextlib.suppress(ValueError):
                objects[parsed] = _decode(kv)
        with self.lock:
            self.objects = objects
            self.rv = revision
            self.compacted = revision
            self.events.clear()
            self.cond.notify_all()

    def _range_all(self) -> dict[str, Any]:
        return self.gateway.call("kv/range", {"key": _b64(PREFIX), "range_end": _prefix_end(PREFIX)})

    # -- the watch ------------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        if self.netns is not None:
            enter_for_good(self.netns)  # this thread's sockets are the node's
        while not self._stopping.is_set():
            try:
                self._watch_once()
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                self.watch_error = f"{type(exc).__name__}: {exc}"
            if self._stopping.wait(WATCH_RETRY):
                return

    def _watch_once(self) -> None:
        # The whole key space: every revision then has an event, so ``rv`` reaches any revision etcd
        # reports and a read or write waiting for one cannot wait for ever.
        conn, response = self.gateway.open_watch(
            {"key": _b64("\0"), "range_end": _b64("\0"), "prev_kv": True, "start_revision": str(self.rv + 1)}
        )
        with self.lock:
            if self._stopping.is_set():
                conn.close()
                return
            self._watch_conn = conn
        try:
            for line in iter(response.readline, b""):
                if not line.strip():
                    continue
                message = json.loads(line)
                if "error" in message:
                    raise EtcdUnavailable(f"etcd watch: {message['error']}")
                result = message.get("result") or {}
                if result.get("canceled"):
                    if int(result.get("compact_revision") or 0):
                        self._load()  # the history it needs is compacted: start again from now
                        return
                    raise EtcdUnavailable(f"etcd watch canceled: {result.get('cancel_reason', '')}")
                self._apply(result.get("events") or [])
            self.watch_error = "the watch stream ended"
        finally:
            with self.lock:
                self._watch_conn = None
            conn.close()

    def _apply(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            for event in events:
                kv = event["kv"]
                revision = int(kv["mod_revision"])
                parsed = parse_key(base64.b64decode(kv["key"]).decode(errors="replace"))
                try:
                    previous = _decode(event["prev_kv"]) if event.get("prev_kv") else None
                    if parsed is None:
                        raise ValueError("not an object key")
                    res = parsed[0]
                    if event.get("type") == "DELETE":
                        last = previous or copy.deepcopy(self.objects.get(parsed))
                        if last is None:
                            raise ValueError("deleted before this store saw it")
                        obj = copy.deepcopy(last)
                        obj["metadata"]["resourceVersion"] = str(revision)
                        self._record(revision, res, "DELETED", obj, last)
                    else:
                        type_ = "ADDED" if str(kv.get("version")) == "1" else "MODIFIED"
                        self._record(revision, res, type_, _decode(kv), previous)
                except ValueError:
                    self.rv = max(self.rv, revision)  # not ours (or unreadable): only time moves
            self.cond.notify_all()

    def _wait_applied(self, revision: int) -> None:
        """Until the watch has applied ``revision`` (read your writes)."""
        deadline = time.monotonic() + APPLY_TIMEOUT
        with self.cond:
            while self.rv < revision:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ApiError(
                        504,
                        "Timeout",
                        f"the etcd watch did not reach revision {revision} within {APPLY_TIMEOUT:g}s "
                        f"(at {self.rv}; {self.watch_error or 'no watch error'})",
                    )
                self.cond.wait(left)

    def sync(self) -> int:
        """Wait until the cache has every change etcd had committed when this was called."""
        revision = int(
            self._call("kv/range", {"key": _b64(PREFIX), "count_only": True})["header"]["revision"]
        )
        self._wait_applied(revision)
        return revision

    def health(self) -> str | None:
        """Unhealthy while the watch is down or etcd does not answer a linearizable read (no quorum)."""
        if self._watch_conn is None:
            return f"etcd watch down: {self.watch_error or 'not started'}"
        try:
            self.gateway.call("kv/range", {"key": _b64(PREFIX), "count_only": True}, timeout=HEALTH_TIMEOUT)
        except EtcdUnavailable as exc:
            return str(exc)
        return None

    def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.gateway.call(method, body)
        except EtcdUnavailable as exc:
            raise ApiError(503, "ServiceUnavailable", f"etcd: {exc}") from exc

    # -- reads ----------------------------------------------------------------------------------------
    def get_or_none(
        self, res: Resource, namespace: str, name: str, *, consistent: bool = False
    ) -> Obj | None:
        if not consistent:
            return super().get_or_none(res, namespace, name)
        key = etcd_key(res, namespace if res.namespaced else "", name)
        kvs = self._call("kv/range", {"key": _b64(key)}).get("kvs") or []
        return _decode(kvs[0]) if kvs else None

    def list(
        self,
        res: Resource,
        namespace: str | None,
        match: Callable[[Obj], bool] = lambda _: True,
        *,
        consistent: bool = False,
    ) -> tuple[list[Obj], int]:
        if consistent:
            self.sync()
        return super().list(res, namespace, match)

    # -- persistence ----------------------------------------------------------------------------------
    def _txn(self, compare: dict[str, Any], success: Sequence[dict[str, Any]]) -> int | None:
        """One guarded transaction; the revision it committed at, None when ``compare`` failed."""
        answer = self._call("kv/txn", {"compare": [compare], "success": [*success], "failure": []})
        if not answer.get("succeeded"):
            return None
        revision = int(answer["header"]["revision"])
        self._wait_applied(revision)
        return revision

    @staticmethod
    def _key_of(res: Resource, obj: Obj) -> str:
        meta = obj["metadata"]
        return etcd_key(res, meta.get("namespace", ""), meta["name"])

    def _insert(self, res: Resource, obj: Obj) -> Obj:
        key = _b64(self._key_of(res, obj))
        revision = self._txn(
            {"key": key, "target": "CREATE", "create_revision": "0", "result": "EQUAL"},
            [{"request_put": {"key": key, "value": _encode(obj)}}],
        )
        if revision is None:
            raise already_exists(res, obj["metadata"]["name"])
        return self._as_of(obj, revision)

    def _replace(self, res: Resource, new: Obj, current: Obj) -> Obj:
        key = _b64(self._key_of(res, current))
        revision = self._txn(_unchanged(key, current), [{"request_put": {"key": key, "value": _encode(new)}}])
        if revision is None:
            raise StaleRead(key)
        return self._as_of(new, revision)

    def _remove(self, res: Resource, last: Obj, current: Obj) -> Obj:
        key = _b64(self._key_of(res, current))
        ops: list[dict[str, Any]] = []
        if res == namespace_resource():
            # The namespace's contents go with it, in the same revision.
            name = current["metadata"]["name"]
            for contained in RESOURCES:
                if contained.namespaced:
                    prefix = f"{PREFIX}{contained.name}/{name}/"
                    ops.append(
                        {"request_delete_range": {"key": _b64(prefix), "range_end": _prefix_end(prefix)}}
                    )
        ops.append({"request_delete_range": {"key": key}})
        revision = self._txn(_unchanged(key, current), ops)
        if revision is None:
            raise StaleRead(key)
        return self._as_of(last, revision)

    @staticmethod
    def _as_of(obj: Obj, revision: int) -> Obj:
        done = copy.deepcopy(obj)
        done["metadata"]["resourceVersion"] = str(revision)
        return done


def _unchanged(key: str, current: Obj) -> dict[str, Any]:
    """The guard of a write based on ``current``: the key was last modified at its resourceVersion."""
    return {
        "key": key,
        "target": "MOD",
        "mod_revision": str(current["metadata"]["resourceVersion"]),
        "result": "EQUAL",
    }


class ApiServerOnEtcd:
    """The kube-apiserver "process" of a static pod, on an :class:`EtcdStore`: :meth:`start` returns
    at once (the kubelet does not wait for its containers); its own thread waits for etcd (bounded,
    retrying, as the real server does at start-up), then serves with the node's serving certificate.
    ``failed`` says why it gave up: the container exited."""

    def __init__(
        self,
        pod: dict[str, Any],
        rootfs: Path,
        *,
        netns: str | None = None,
        connect_wait: float | None = None,
    ) -> None:
        self.store = EtcdStore.for_apiserver(pod, rootfs, netns=netns)
        self.server = ApiServerStandin.from_manifest(pod, rootfs, store=self.store)
        self.netns = netns
        self.connect_wait = CONNECT_WAIT if connect_wait is None else connect_wait
        self.failed: str | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.server.running

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"apiserver-on-etcd:{self.server.port}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        if self.netns is not None:
            enter_for_good(self.netns)  # its listening socket and its threads are the node's
        try:
            self.store.start(self.connect_wait)
            with self._lock:
                if self._stopped:
                    return
                self.server.start()
        except Exception as exc:  # anything that stops the start-up is the container exiting
            self.failed = f"{type(exc).__name__}: {exc}"
            self.store.stop()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True  # a start-up past its wait for etcd does not serve now
        self.server.stop()
        self.store.stop()  # a start-up still waiting for etcd gives up
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


__all__ = ["ApiServerOnEtcd", "EtcdGateway", "EtcdStore", "EtcdUnavailable", "etcd_key", "parse_key"]
