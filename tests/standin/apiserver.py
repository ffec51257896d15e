"""A Kubernetes API server stand-in that speaks the real protocol, for the official client and kubectl.

HTTPS with the cluster's serving certificate; client certificates verified against the cluster CA
(identity = CN, groups = O); bootstrap tokens (``Authorization: Bearer <id>.<secret>``) checked against
their Secrets, expiry included, as ``system:bootstrap:<id>``; anonymous requests only for health,
version and ``kube-public/cluster-info``. Identities that are not privileged get what RBAC objects in
the store grant them (:mod:`tests.standin.authorizer`). The controller-manager's bootstrap signer,
token cleaner and CSR approver/signer run beside it (:mod:`tests.standin.controllers`), on a clock
tests can move forward (:meth:`ApiServerStandin.advance_clock`).
CRUD, ``/status``, selectors, merge/strategic/JSON patches, watch with replay and ``410 Gone``,
pagination, discovery and ``Table`` output for ``kubectl get``. Objects live in a :class:`Store` that
outlives :meth:`ApiServerStandin.stop` (like etcd), so ``start()`` again is a restart; with an
``EtcdStore`` (:mod:`tests.standin.etcd_store`) they live in a real etcd, and several stand-ins on it
share them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import hmac
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.standin.authorizer import allowed, resource_named
from tests.standin.controllers import KUBELET_CLIENT_SIGNER, Controllers, valid_token
from tests.standin.store import (
    RESOURCES,
    WRITE_ATTEMPTS,
    ApiError,
    Event,
    Obj,
    Resource,
    Store,
    conflict,
    gone,
    resource_by_name,
)

__all__ = ["HEALTH_PATHS", "ApiError", "ApiServerStandin", "Store"]

HEALTH_PATHS = ("/livez", "/readyz", "/healthz", "/version")
HEALTH_CHECKS = ("ping", "log", "etcd", "poststarthook/start-apiserver-admission-initializer")
ANONYMOUS = "system:anonymous"
BOOTSTRAP_GROUP_RE = re.compile(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]")
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


# -- selectors --------------------------------------------------------------------------------------
def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_matcher(text: str) -> Callable[[Obj], bool]:
    """``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x,y)``, comma = AND."""
    tests: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_selector(text):
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}
            if op == "in":
                tests.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                tests.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w.-]*)", term):
            key, op, value = m[1], m[2], m[3]
            if op == "!=":
                tests.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif m := re.fullmatch(r"!\s*([\w./-]+)", term):
            tests.append(lambda lb, k=m[1]: k not in lb)
        elif re.fullmatch(r"[\w./-]+", term):
            tests.append(lambda lb, k=term: k in lb)
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
    return lambda obj: all(t((obj.get("metadata") or {}).get("labels") or {}) for t in tests)


FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "nodes": ("spec.unschedulable",),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
}


def _field_value(obj: Obj, path: str) -> str:
    if path == "source":
        return str((obj.get("source") or {}).get("component", ""))
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def field_matcher(text: str, res: Resource) -> Callable[[Obj], bool]:
    allowed = ("metadata.name", "metadata.namespace", *FIELDS.get(res.name, ()))
    tests: list[Callable[[Obj], bool]] = []
    for term in _split_selector(text):
        m = re.fullmatch(r"([\w.]+)\s*(==|!=|=)\s*(.*)", term)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: {text!r}; can't understand {term!r}")
        path, op, value = m[1], m[2], m[3]
        if path not in allowed:
            raise ApiError(400, "BadRequest", f'field label not supported: "{path}"')
        if path == "spec.hostNetwork" and value == "":
            value = "false"
        if op == "!=":
            tests.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            tests.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(t(obj) for t in tests)


# -- patches ----------------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Lists merged by key in a strategic merge patch (the patchMergeKey tags the clients rely on).
MERGE_KEYS = {
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "addresses": "type",
    "taints": "key",
    "tolerations": None,
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
}
PRIMITIVE_SET_LISTS = {"finalizers"}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch: a merge patch whose keyed lists (conditions by type...) merge by key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    if patch.get("$patch") == "replace":
        return {k: v for k, v in copy.deepcopy(patch).items() if not k.startswith("$")}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and MERGE_KEYS.get(key) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key] or "")
        elif isinstance(value, list) and key in PRIMITIVE_SET_LISTS and isinstance(result.get(key), list):
            result[key] = result[key] + [v for v in value if v not in result[key]]
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [i for i in copy.deepcopy(patch) if not (isinstance(i, dict) and "$patch" in i)]
    merged = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            merged.append(copy.deepcopy(item))
            continue
        index = next(
            (i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)

    def parent(parts: list[str]) -> tuple[Any, str]:
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    def get(path: str) -> Any:
        node = doc
        for part in _pointer(path):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def add(path: str, value: Any) -> None:
        nonlocal doc
        parts = _pointer(path)
        if not parts:
            doc = value
            return
        node, last = parent(parts)
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), value)
        else:
            node[last] = value

    def remove(path: str) -> Any:
        node, last = parent(_pointer(path))
        return node.pop(int(last)) if isinstance(node, list) else node.pop(last)

    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        try:
            if kind == "add":
                add(path, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(path)
            elif kind == "replace":
                get(path)  # must exist
                remove(path) if _pointer(path) else None
                add(path, copy.deepcopy(op["value"]))
            elif kind == "move":
                add(path, remove(op["from"]))
            elif kind == "copy":
                add(path, copy.deepcopy(get(op["from"])))
            elif kind == "test":
                if get(path) != op.get("value"):
                    raise ApiError(422, "Invalid", f"the test operation failed for path {path!r}")
            else:
                raise ApiError(400, "BadRequest", f"unexpected kind of JSON patch operation: {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {op} ({exc})",
            ) from exc
    return doc


# -- discovery ---------------------------------------------------------------------------------------
def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for res in RESOURCES:
        if res.group and res.version not in groups.setdefault(res.group, []):
            groups[res.group].append(res.version)
    return groups


def _api_group(name: str, versions: list[str]) -> Obj:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def _resource_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for res in RESOURCES:
        if res.group != group or res.version != version:
            continue
        entry: Obj = {
            "name": res.name,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": VERBS,
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.name in ("pods", "deployments", "daemonsets", "services"):
            entry["categories"] = ["all"]
        resources.append(entry)
        if res.status_subresource:
            resources.append(
                {
                    "name": f"{res.name}/status",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if res.name == "certificatesigningrequests":
            resources.append(
                {
                    "name": "certificatesigningrequests/approval",
                    "singularName": "",
                    "namespaced": False,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if res.name == "pods":
            resources.append(
                {
                    "name": "pods/binding",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Binding",
                    "verbs": ["create"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# -- Table output (kubectl get) ----------------------------------------------------------------------
def _age(obj: Obj) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _column(name: str, kind: str = "string", description: str = "", priority: int = 0) -> Obj:
    return {
        "name": name,
        "type": kind,
        "format": "name" if name == "Name" else "",
        "description": description,
        "priority": priority,
    }


def _pod_row(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    phase = status.get("reason") or status.get("phase") or ""
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting") or {}
        terminated = (s.get("state") or {}).get("terminated") or {}
        if waiting.get("reason"):
            phase = waiting["reason"]
        elif terminated.get("reason"):
            phase = terminated["reason"]
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        phase,
        restarts,
        _age(pod),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_row(node: Obj) -> list[Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        _age(node),
        info.get("kubeletVersion", ""),
    ]


TABLES: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "string"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
        ],
        _pod_row,
    ),
    "nodes": (
        [_column("Name"), _column("Status"), _column("Roles"), _column("Age"), _column("Version")],
        _node_row,
    ),
    "namespaces": (
        [_column("Name"), _column("Status"), _column("Age")],
        lambda ns: [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""), _age(ns)],
    ),
    "configmaps": (
        [_column("Name"), _column("Data", "integer"), _column("Age")],
        lambda cm: [
            cm["metadata"]["name"],
            len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            _age(cm),
        ],
    ),
}


def _table(res: Resource, items: list[Obj], meta: Obj, include: str) -> Obj:
    columns, row = TABLES.get(
        res.name, ([_column("Name"), _column("Age")], lambda o: [o["metadata"]["name"], _age(o)])
    )
    rows = []
    for item in items:
        full = {"apiVersion": res.api_version, "kind": res.kind, **item}
        if include == "None":
            embedded: Obj | None = None
        elif include == "Object":
            embedded = full
        else:
            embedded = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item.get("metadata", {}),
            }
        table_row: Obj = {"cells": row(full)}
        if embedded is not None:
            table_row["object"] = embedded
        rows.append(table_row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }


# -- the server ----------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: ApiServerStandin

    def __init__(
        self, standin: ApiServerStandin, address: tuple[str, int], context: ssl.SSLContext, family: int
    ) -> None:
        self.address_family = family
        self.standin = standin
        self.context = context
        self.connections: set[ssl.SSLSocket] = set()
        self.threads: set[threading.Thread] = set()
        self.conn_lock = threading.Lock()
        self.closing = False
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One named daemon thread per connection, tracked so that ``stop()`` can join it."""
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"apiserver-standin-conn:{self.server_address[1]}",
            daemon=True,
        )
        with self.conn_lock:
            self.threads.add(thread)
        thread.start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, then serve it."""
        tls: ssl.SSLSocket | None = None
        try:
            request.settimeout(5)
            try:
                tls = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            tls.settimeout(300)
            with self.conn_lock:
                if self.closing:
                    return
                self.connections.add(tls)
            with contextlib.suppress(OSError, ValueError):
                self.RequestHandlerClass(tls, client_address, self)
        finally:
            if tls is not None:
                with self.conn_lock:
                    self.connections.discard(tls)
                with contextlib.suppress(OSError):
                    tls.close()
            with self.conn_lock:
                self.threads.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client going away mid-request is normal here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "kube-apiserver-standin"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Without this, small responses wait for delayed ACKs (~40 ms a request), as Go's server avoids.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing ------------------------------------------------------------------------------------
    @property
    def standin(self) -> ApiServerStandin:
        return self.server.standin

    @property
    def store(self) -> Store:
        return self.server.standin.store

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", self._audit_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode())

    def _error(self, err: ApiError) -> None:
        self._json(err.code, err.status())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
        raw = self._raw_body
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if raw and not (ctype.endswith(("json", "yaml")) or ctype == ""):
            # Protobuf/CBOR: 415 makes client-go fall back to JSON, as against a server without them.
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json, application/yaml; got {ctype}",
            )
        try:
            if "yaml" in ctype:
                import yaml

                return yaml.safe_load(raw)
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(
                400, "BadRequest", f"the body of the request was in an unknown format: {exc}"
            ) from exc

    def _identity(self) -> tuple[str, list[str]]:
        cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        if cert:
            user, groups = "", []
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        user = value
                    elif key == "organizationName":
                        groups.append(value)
            return user, [*groups, "system:authenticated"]
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return self._token_identity(auth[7:].strip())
        return ANONYMOUS, ["system:unauthenticated"]

    def _token_identity(self, token: str) -> tuple[str, list[str]]:
        """Bootstrap tokens (``<id>.<secret>`` against ``kube-system/bootstrap-token-<id>``, unexpired,
        with ``usage-bootstrap-authentication``); anything else is 401, as the real authenticator chain
        ends when no authenticator accepts a bearer token."""
        m = re.fullmatch(r"([a-z0-9]{6})\.([a-z0-9]{16})", token)
        secret_res = resource_by_name("", "v1", "secrets")
        assert secret_res is not None
        secret = self.store.get_or_none(secret_res, "kube-system", f"bootstrap-token-{m[1]}") if m else None
        data = valid_token(secret, m[1], self.standin.now()) if m else None
        if (
            m
            and data is not None
            and hmac.compare_digest(data["token-secret"].encode(), m[2].encode())
            and data.get("usage-bootstrap-authentication") == "true"
        ):
            extra = [g.strip() for g in data.get("auth-extra-groups", "").split(",") if g.strip()]
            # A token naming a group outside system:bootstrappers:* is refused, not trimmed.
            if all(BOOTSTRAP_GROUP_RE.fullmatch(g) for g in extra):
                return f"system:bootstrap:{m[1]}", ["system:bootstrappers", *extra, "system:authenticated"]
        raise ApiError(401, "Unauthorized", "Unauthorized")

    # -- dispatch --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._audit_id = str(time.monotonic_ns())
        user = ANONYMOUS
        try:
            # Read the body before anything can fail, so a keep-alive connection stays in sync.
            self._raw_body = self._body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        try:
            try:
                user, groups = self._identity()
            finally:
                with self.standin._log_lock:
                    self.standin.request_log.append((self.command, self.path, user))
            self.user, self.groups = user, groups
            parsed = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
            path = parsed.path.rstrip("/") or "/"
            if not self._non_resource(path):
                self._resource(path)
        except ApiError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _non_resource(self, path: str) -> bool:
        base = path.split("/")[1] if path != "/" else ""
        if f"/{base}" in ("/livez", "/readyz", "/healthz"):
            # The etcd check fails while the store cannot reach its backend (a store on etcd).
            failed = {"etcd"} if self.store.health() is not None else set()
            if "verbose" in self.query or failed:
                lines = [
                    f"[-]{c} failed: reason withheld" if c in failed else f"[+]{c} ok" for c in HEALTH_CHECKS
                ]
                verdict = "failed" if failed else "passed"
                self._send(
                    500 if failed else 200,
                    ("\n".join(lines) + f"\n{base} check {verdict}\n").encode(),
                    "text/plain; charset=utf-8",
                )
            else:
                self._send(200, b"ok", "text/plain; charset=utf-8")
            return True
        if path == "/version":
            self._json(200, self.standin.version_info())
            return True
        # Anonymous users get health and version (system:public-info-viewer) and, through the resource
        # path, cluster-info; API discovery (system:discovery) is for authenticated users only.
        depth = len(path.strip("/").split("/"))
        discovery = path in ("/api", "/apis") or (path.startswith("/api/") and depth == 2)
        discovery = discovery or (path.startswith("/apis/") and depth <= 3)
        if self.user == ANONYMOUS and (discovery or not path.startswith(("/api/", "/apis/"))):
            raise ApiError(403, "Forbidden", f'forbidden: User "{ANONYMOUS}" cannot get path "{path}"')
        if path == "/api":
            host, port = self.standin.host, self.standin.port
            self._json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}
                    ],
                },
            )
            return True
        if path == "/apis":
            groups = [_api_group(name, versions) for name, versions in _groups().items()]
            self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            return True
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in _groups():
            self._json(
                200, {"kind": "APIGroup", "apiVersion": "v1", **_api_group(parts[1], _groups()[parts[1]])}
            )
            return True
        if path == "/api/v1":
            self._json(200, _resource_list("", "v1"))
            return True
        if parts[0] == "apis" and len(parts) == 3 and parts[2] in _groups().get(parts[1], []):
            self._json(200, _resource_list(parts[1], parts[2]))
            return True
        if not path.startswith(("/api/v1/", "/apis/")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return False

    def _resource(self, path: str) -> None:
        # Path segments arrive percent-encoded (the client sends "kubeadm%3Aget-nodes").
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 4:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = parts[1], parts[2], parts[3:]
        legacy_watch = bool(rest) and rest[0] == "watch"
        if legacy_watch:
            rest = rest[1:]
        namespace: str | None = None
        res: Resource | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = resource_by_name(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, res, rest = rest[1], candidate, rest[3:]
        if res is None and rest:
            res = resource_by_name(group, version, rest[0])
            rest = rest[1:]
            if res is not None and res.namespaced and rest:
                res = None  # a namespaced object needs namespaces/<ns>/ in its path
        if res is None or len(rest) > 2:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[0] if rest else ""
        sub = rest[1] if len(rest) > 1 else ""
        if sub and not (
            (sub == "status" and res.status_subresource)
            or (sub == "binding" and res.name == "pods")
            or (sub == "approval" and res.name == "certificatesigningrequests")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        watch = legacy_watch or self.query.get("watch") in ("true", "1")
        verb = self._verb(name, watch)
        self._authorize(verb, res, namespace, name, sub)
        ns = namespace or ""
        if verb == "watch":
            selector = self.query.get("fieldSelector", "")
            if name:
                selector = ",".join(filter(None, [selector, f"metadata.name={name}"]))
            self._watch(res, namespace, self._matcher(res, selector))
        elif verb == "list":
            self._list(res, namespace)
        elif verb == "get":
            self._json(200, self.store.get(res, ns, name, consistent=True))
        elif verb == "create":
            if sub == "binding":
                self._bind(res, ns, name)
                return
            if res.namespaced and namespace is None:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            body = self._json_body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request must be an object")
            self._check_kind(res, body)
            if res.name == "certificatesigningrequests":
                self._admit_csr(body)
            self._json(201, self.store.create(res, ns, body, dry_run=self._dry_run()))
        elif verb == "update":
            body = self._json_body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request must be an object")
            self._check_kind(res, body)
            # /approval, like /status, changes only the status (the conditions).
            sub_ = "status" if sub == "approval" else sub
            self._json(200, self.store.update(res, ns, name, body, subresource=sub_, dry_run=self._dry_run()))
        elif verb == "patch":
            self._patch(res, ns, name, sub)
        elif verb == "delete":
            self._delete(res, ns, name)
        elif verb == "deletecollection":
            self._delete_collection(res, namespace)
        else:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )

    def _verb(self, name: str, watch: bool) -> str:
        method = "GET" if self.command == "HEAD" else self.command
        if method == "GET":
            return "watch" if watch else ("get" if name else "list")
        if method == "POST":
            return "create"
        if not name:
            return "deletecollection" if method == "DELETE" else "unsupported"
        return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "unsupported")

    def _authorize(self, verb: str, res: Resource, namespace: str | None, name: str, sub: str) -> None:
        if self.user != ANONYMOUS:
            if self._is_privileged():
                return
            resource = resource_named(res, sub)
            if allowed(self.store, self.user, self.groups, verb, res.group, resource, namespace, name):
                return
            self._forbid(verb, res, namespace, name, sub, self.user)
        if (
            verb == "get"
            and res.name == "configmaps"
            and (namespace, name) == ("kube-public", "cluster-info")
        ):
            return
        self._forbid(verb, res, namespace, name, sub, ANONYMOUS)

    def _is_privileged(self) -> bool:
        """A small part of real authorization, enough for the bootstrap flow: system:masters always;
        the kubelet and control-plane components (Node authorizer and their bootstrap roles); anyone
        bound to cluster-admin by a ClusterRoleBinding. So admin.conf (group kubeadm:cluster-admins)
        is forbidden until the kubeadm:cluster-admins binding exists, as in a real cluster."""
        groups = set(self.groups)
        if "system:masters" in groups or "system:nodes" in groups or self.user.startswith("system:node:"):
            return True
        if self.user in (
            "system:kube-controller-manager",
            "system:kube-scheduler",
            "kube-apiserver-kubelet-client",
        ):
            return True
        crb = resource_by_name("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
        assert crb is not None
        bindings, _ = self.store.list(crb, None)
        for binding in bindings:
            if (binding.get("roleRef") or {}).get("name") != "cluster-admin":
                continue
            for subject in binding.get("subjects") or []:
                if (subject.get("kind") == "Group" and subject.get("name") in groups) or (
                    subject.get("kind") == "User" and subject.get("name") == self.user
                ):
                    return True
        return False

    def _forbid(
        self, verb: str, res: Resource, namespace: str | None, name: str, sub: str, user: str
    ) -> None:
        resource = f"{res.name}/{sub}" if sub else res.name
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        named = f' "{name}"' if name else ""
        message = (
            f"{res.qualified()}{named} is forbidden: "
            f'User "{user}" cannot {verb} resource "{resource}" in API group "{res.group}" {where}'
        )
        details: Obj = {"kind": res.name}
        if name:
            details["name"] = name
        if res.group:
            details["group"] = res.group
        raise ApiError(403, "Forbidden", message, details)

    def _admit_csr(self, body: Obj) -> None:
        """What the real API server does to a new CSR: the requester's identity goes into the spec
        (whatever the client sent), and a request that is not a PEM CSR or names no signer is invalid."""
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise ApiError(422, "Invalid", 'CertificateSigningRequest "" is invalid: spec: Required value')
        name = str((body.get("metadata") or {}).get("name") or "")
        problems = []
        try:
            from cryptography import x509

            x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
        except (ValueError, TypeError):
            problems.append(
                "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"
            )
        if not spec.get("signerName"):
            problems.append("spec.signerName: Required value")
        if spec.get("signerName") == KUBELET_CLIENT_SIGNER and "client auth" not in (
            spec.get("usages") or []
        ):
            problems.append('spec.usages: Unsupported value: missing "client auth"')
        if problems:
            raise ApiError(
                422, "Invalid", f'CertificateSigningRequest "{name}" is invalid: {", ".join(problems)}'
            )
        spec["username"] = self.user
        spec["groups"] = list(self.groups)
        spec.pop("uid", None)
        spec.pop("extra", None)
        body.pop("status", None)

    def _check_kind(self, res: Resource, body: Obj) -> None:
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if (kind and kind != res.kind) or (api_version and api_version != res.api_version):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({res.api_version})"
                if api_version != res.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({res.kind})",
            )

    def _dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    def _matcher(self, res: Resource, field_selector: str) -> Callable[[Obj], bool]:
        labels = label_matcher(self.query.get("labelSelector", ""))
        fields = field_matcher(field_selector, res)
        return lambda obj: labels(obj) and fields(obj)

    def _wants_table(self) -> str | None:
        accept = self.headers.get("Accept", "")
        for option in accept.split(","):
            params = dict(p.strip().split("=", 1) for p in option.split(";")[1:] if "=" in p)
            if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
                return params.get("v", "v1")
        return None

    # -- verbs -----------------------------------------------------------------------------------
    def _list(self, res: Resource, namespace: str | None) -> None:
        match = self._matcher(res, self.query.get("fieldSelector", ""))
        rv_param = self.query.get("resourceVersion", "")
        store = self.store
        with store.lock:
            if rv_param not in ("", "0"):
                try:
                    rv = int(rv_param)
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {rv_param!r}") from exc
                if rv < store.compacted:
                    raise gone(rv, store.compacted)
            items, rv = store.list(res, namespace, match, consistent=True)
        start = ""
        if token := self.query.get("continue"):
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, start = int(state["rv"]), str(state["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, "BadRequest", "continue key is not valid") from exc
            if list_rv < store.compacted:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter, or use the continue token in this "
                    "response to retrieve the remainder of the results.",
                )
            rv = list_rv
            items = [i for i in items if _key(i) > start]
        meta: Obj = {"resourceVersion": str(rv)}
        limit = int(self.query.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            token = {"rv": rv, "start": _key(items[-1])}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = remaining
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        if self._wants_table():
            self._json(
                200, _table(res, items, meta, self.query.get("includeObject", "PartialObjectMetadata"))
            )
            return
        self._json(
            200, {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}
        )

    def _patch(self, res: Resource, ns: str, name: str, sub: str) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._json_body()
        # A patch applies to whatever is stored: when another API server sharing the store wrote the
        # object between the read and the write, it is applied again to the new state (as the real
        # server's update loop does), unless the patch itself names a resourceVersion.
        for _ in range(WRITE_ATTEMPTS):
            try:
                self._patch_once(res, ns, name, sub, ctype, body)
                return
            except ApiError as err:
                if err.reason != "Conflict" or _patch_pins_version(body):
                    raise
        raise conflict(res, name)

    def _patch_once(self, res: Resource, ns: str, name: str, sub: str, ctype: str, body: Any) -> None:
        store = self.store
        with store.lock:
            current = store.get_or_none(res, ns, name, consistent=True)
            if current is None:
                if ctype == "application/apply-patch+yaml" and not sub and isinstance(body, dict):
                    self._json(201, store.create(res, ns, body, dry_run=self._dry_run()))
                    return
                raise ApiError(
                    404, "NotFound", f'{res.qualified()} "{name}" not found', {"name": name, "kind": res.name}
                )
            if ctype == "application/merge-patch+json" or ctype == "application/apply-patch+yaml":
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
                patched = merge_patch(current, body)
            elif ctype == "application/strategic-merge-patch+json":
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "a strategic merge patch must be a JSON object")
                patched = strategic_merge_patch(current, body)
            elif ctype == "application/json-patch+json":
                if not isinstance(body, list):
                    raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
                patched = json_patch(current, body)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
                )
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "the patch did not produce an object")
            self._json(200, store.update(res, ns, name, patched, subresource=sub, dry_run=self._dry_run()))

    def _delete(self, res: Resource, ns: str, name: str) -> None:
        body = self._json_body() if self._raw_body.strip() else None
        preconditions = (body or {}).get("preconditions") if isinstance(body, dict) else None
        if self._dry_run():
            obj = self.store.get(res, ns, name, consistent=True)
        else:
            obj = self.store.delete(res, ns, name, preconditions)
        if res.returns_deleted or obj["metadata"].get("deletionTimestamp"):
            self._json(200, obj)
            return
        details: Obj = {"name": name, "kind": res.name, "uid": obj["metadata"]["uid"]}
        if res.group:
            details["group"] = res.group
        self._json(
            200,
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details},
        )

    def _delete_collection(self, res: Resource, namespace: str | None) -> None:
        match = self._matcher(res, self.query.get("fieldSelector", ""))
        items, _ = self.store.list(res, namespace, match, consistent=True)
        deleted = []
        for item in items:
            with contextlib.suppress(ApiError):
                deleted.append(
                    self.store.delete(res, item["metadata"].get("namespace", ""), item["metadata"]["name"])
                )
        _, rv = self.store.list(res, namespace, lambda _: False)
        self._json(
            200,
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": deleted,
            },
        )

    def _bind(self, res: Resource, ns: str, name: str) -> None:
        body = self._json_body()
        target = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not target:
            raise ApiError(422, "Invalid", f'Binding "{name}" is invalid: target.name: Required value')
        with self.store.lock:
            pod = self.store.get(res, ns, name, consistent=True)
            if (pod.get("spec") or {}).get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                    f'is already assigned to node "{pod["spec"]["nodeName"]}"',
                )
            pod["spec"]["nodeName"] = target
            self.store.update(res, ns, name, pod)
        self._json(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )

    # -- watch -----------------------------------------------------------------------------------
    def _watch(self, res: Resource, namespace: str | None, match: Callable[[Obj], bool]) -> None:
        store = self.store
        rv_param = self.query.get("resourceVersion", "")
        timeout = float(self.query["timeoutSeconds"]) if self.query.get("timeoutSeconds") else None
        bookmarks = self.query.get("allowWatchBookmarks") in ("true", "1")
        send_initial = self.query.get("sendInitialEvents") == "true"
        error: ApiError | None = None
        pending: list[tuple[str, Obj]] = []
        with store.lock:
            if rv_param in ("", "0") or send_initial:
                items, last = store.list(res, namespace, match, consistent=True)
                pending = [("ADDED", item) for item in items]
            else:
                try:
                    last = int(rv_param)
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {rv_param!r}") from exc
                try:
                    pending = _translate(store.events_after(last), res, namespace, match)
                    last = max(last, store.rv)
                except ApiError as err:
                    error = err
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.close_connection = True
        if error is not None:
            self._chunk({"type": "ERROR", "object": error.status()})
            self._end_chunks()
            return
        state = _WatchState()
        self.standin._register_watch(state, self.connection)
        try:
            for type_, obj in pending:
                self._chunk({"type": type_, "object": self._watch_object(res, obj)})
            if send_initial and bookmarks:
                self._bookmark(res, last, initial_end=True)
            deadline = None if timeout is None else time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.standin.bookmark_interval
            while True:
                with store.cond:
                    while store.rv <= last and not state.dropped:
                        now_ = time.monotonic()
                        wake = next_bookmark if bookmarks else now_ + 0.5
                        if deadline is not None:
                            wake = min(wake, deadline)
                        if now_ >= wake:
                            break
                        store.cond.wait(wake - now_)
                    if state.dropped:
                        return  # no terminating chunk: the connection just breaks
                    try:
                        events = store.events_after(last)
                    except ApiError as err:
                        self._chunk({"type": "ERROR", "object": err.status()})
                        break
                    last = store.rv
                for type_, obj in _translate(events, res, namespace, match):
                    self._chunk({"type": type_, "object": self._watch_object(res, obj)})
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if bookmarks and time.monotonic() >= next_bookmark:
                    self._bookmark(res, last)
                    next_bookmark = time.monotonic() + self.standin.bookmark_interval
            self._end_chunks()
        finally:
            self.standin._unregister_watch(state)

    def _watch_object(self, res: Resource, obj: Obj) -> Obj:
        """The event's object: itself, or a one-row Table when the client asked for tables (kubectl -w)."""
        if not self._wants_table():
            return obj
        meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        return _table(res, [obj], meta, self.query.get("includeObject", "PartialObjectMetadata"))

    def _bookmark(self, res: Resource, rv: int, initial_end: bool = False) -> None:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._chunk(
            {
                "type": "BOOKMARK",
                "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta},
            }
        )

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(b"0\r\n\r\n")


def _patch_pins_version(body: Any) -> bool:
    """Whether a patch sets ``metadata.resourceVersion`` (then a conflict is the client's to handle)."""
    if isinstance(body, dict):
        meta = body.get("metadata")
        return isinstance(meta, dict) and bool(meta.get("resourceVersion"))
    if isinstance(body, list):
        return any(isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body)
    return False


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _translate(
    events: list[Event], res: Resource, namespace: str | None, match: Callable[[Obj], bool]
) -> list[tuple[str, Obj]]:
    """Store events as one watcher sees them: an object entering the selector is ADDED, leaving is DELETED."""
    out: list[tuple[str, Obj]] = []
    for ev in events:
        if ev.resource != res:
            continue
        if namespace is not None and ev.obj["metadata"].get("namespace", "") != namespace:
            continue
        now_match = match(ev.obj)
        if ev.type == "MODIFIED":
            before = ev.previous is not None and match(ev.previous)
            type_ = (
                "MODIFIED" if now_match and before else "ADDED" if now_match else "DELETED" if before else ""
            )
        else:
            type_ = ev.type if now_match else ""
        if type_:
            out.append((type_, copy.deepcopy(ev.obj)))
    return out


class _WatchState:
    def __init__(self) -> None:
        self.dropped = False


class ApiServerStandin:
    """The stand-in server; ``start()``/``stop()`` may alternate (a restart keeps ``store``)."""

    bookmark_interval = 1.0  # seconds between BOOKMARK events on watches that allow them
    # How long after a signing token appears its jws-kubeconfig-<id> key shows up in cluster-info.
    signer_delay = 0.5

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls_cert: Path,
        tls_key: Path,
        client_ca: Path,
        store: Store | None = None,
        version: str = "v1.34.2",
        signing_cert: Path | None = None,
        signing_key: Path | None = None,
        signer_delay: float | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.tls_cert, self.tls_key, self.client_ca = Path(tls_cert), Path(tls_key), Path(client_ca)
        self.store = store if store is not None else Store()
        self.version = version
        self.clock_offset = datetime.timedelta(0)
        # The controller-manager's CA (for CSR signing): beside the client CA, as kubeadm lays it out.
        self.signing_cert = Path(signing_cert) if signing_cert else self.client_ca
        self.signing_key = Path(signing_key) if signing_key else self.client_ca.with_suffix(".key")
        self.controllers = Controllers(
            self.store,
            self.now,
            signer_delay=self.signer_delay if signer_delay is None else signer_delay,
            signing_cert=self.signing_cert,
            signing_key=self.signing_key,
        )
        self.request_log: list[tuple[str, str, str]] = []
        self._log_lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._watches: dict[_WatchState, ssl.SSLSocket] = {}

    @classmethod
    def from_manifest(cls, pod: dict[str, Any], rootfs: Path, store: Store | None = None) -> ApiServerStandin:
        """From the kube-apiserver static pod: address, port and TLS files (host paths under ``rootfs``).

        A flag the real kube-apiserver does not know stops it, as the real one exits at once with
        ``Error: unknown flag: --name`` (the kubelet then restarts it, crash-looping): raises ValueError.
        """
        containers = (pod.get("spec") or {}).get("containers") or []
        container = next((c for c in containers if c.get("name") == "kube-apiserver"), containers[0])
        unknown = sorted(set(manifest_flags(pod, "kube-apiserver", valueless=True)) - KNOWN_APISERVER_FLAGS)
        if unknown:
            raise ValueError(f"Error: unknown flag: --{unknown[0]}")
        flags = manifest_flags(pod, "kube-apiserver")
        image = str(container.get("image", ""))
        version = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "v1.34.2"

        def host_path(flag: str) -> Path:
            return Path(rootfs) / flags[flag].lstrip("/")

        signing = _controller_manager_signing(Path(rootfs), pod)
        server = cls(
            host=flags.get("advertise-address", "127.0.0.1"),
            port=int(flags.get("secure-port", "6443")),
            tls_cert=host_path("tls-cert-file"),
            tls_key=host_path("tls-private-key-file"),
            client_ca=host_path("client-ca-file"),
            store=store,
            version=version if re.fullmatch(r"v\d+\.\d+\.\d+.*", version) else "v1.34.2",
            signing_cert=signing[0] if signing else None,
            signing_key=signing[1] if signing else None,
        )
        ranges = flags.get("service-cluster-ip-range")
        server.store.service_cidrs = ranges.split(",") if ranges else []
        return server

    def now(self) -> datetime.datetime:
        """The stand-in's wall clock (token expiry, certificate validity): real time plus the offset
        :meth:`advance_clock` added."""
        return datetime.datetime.now(datetime.UTC) + self.clock_offset

    def advance_clock(self, by: datetime.timedelta) -> None:
        """Move the stand-in's clock (and its controllers') forward: tokens expire, the cleaner runs."""
        self.clock_offset += by

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def api_requests(self) -> list[tuple[str, str, str]]:
        """The request log without health and version probes."""
        with self._log_lock:
            return [
                r for r in self.request_log if not r[1].split("?")[0].rstrip("/").startswith(HEALTH_PATHS)
            ]

    def version_info(self) -> Obj:
        m = re.match(r"v(\d+)\.(\d+)", self.version)
        major, minor = (m[1], m[2]) if m else ("1", "34")
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(max(0, int(minor) - 1)),
            "gitVersion": self.version,
            "gitCommit": "6e4bd0c1e4b3a8c1c8b6d0a4c1a5e2f9b7d3c2a1",
            "gitTreeState": "clean",
            "buildDate": "2025-11-11T19:08:04Z",
            "goVersion": "go1.24.9",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def start(self) -> None:
        if self._httpd is not None:
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        context.load_verify_locations(cafile=str(self.client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
        context.set_alpn_protocols(["http/1.1"])
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        httpd = _Server(self, (self.host, self.port), context, family)
        if self.port == 0:
            self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"apiserver-standin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self.controllers.start()

    def stop(self) -> None:
        """Close the listening socket and every connection (watches included); the store stays."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.controllers.stop()
        httpd.shutdown()
        httpd.server_close()
        self.drop_watches()
        with httpd.conn_lock:
            httpd.closing = True
            connections, threads = list(httpd.connections), list(httpd.threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def drop_watches(self) -> None:
        """Break every open watch connection (no clean end of stream), like a network drop."""
        with self.store.cond:
            watches = list(self._watches.items())
            for state, _ in watches:
                state.dropped = True
            self.store.cond.notify_all()
        for _, conn in watches:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def expire_watch_history(self) -> None:
        """Compact the event log: a watch (or list) from any older resourceVersion now gets 410 Gone."""
        self.store.compact()

    def _register_watch(self, state: _WatchState, conn: Any) -> None:
        with self.store.lock:
            self._watches[state] = conn

    def _unregister_watch(self, state: _WatchState) -> None:
        with self.store.lock:
            self._watches.pop(state, None)

    def __enter__(self) -> ApiServerStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def manifest_flags(pod: dict[str, Any], container: str, *, valueless: bool = False) -> dict[str, str]:
    """The ``--name=value`` flags (command and args) of ``container`` in a static pod (else of its
    first container); with ``valueless``, also the ``--name`` ones (value "")."""
    containers = (pod.get("spec") or {}).get("containers") or []
    found = next((c for c in containers if c.get("name") == container), containers[0] if containers else {})
    flags: dict[str, str] = {}
    for arg in [*(found.get("command") or []), *(found.get("args") or [])]:
        if isinstance(arg, str) and arg.startswith("--") and ("=" in arg or valueless):
            name, _, value = arg[2:].partition("=")
            flags[name] = value
    return flags


# The flags of the real kube-apiserver (v1.31 to v1.35; `kube-apiserver --help`), the generic and the
# logging ones included: any other name is refused at start-up, as the real binary does.
_APISERVER_FLAG_NAMES = """
    admission-control-config-file advertise-address aggregator-reject-forwarding-redirect
    allow-metric-labels allow-metric-labels-manifest allow-privileged anonymous-auth
    api-audiences audit-log-batch-buffer-size audit-log-batch-max-size audit-log-batch-max-wait
    audit-log-batch-throttle-burst audit-log-batch-throttle-enable audit-log-batch-throttle-qps
    audit-log-compress audit-log-format audit-log-maxage audit-log-maxbackup audit-log-maxsize
    audit-log-mode audit-log-path audit-log-truncate-enabled audit-log-truncate-max-batch-size
    audit-log-truncate-max-event-size audit-log-version audit-policy-file
    audit-webhook-batch-buffer-size audit-webhook-batch-initial-backoff audit-webhook-batch-max-size
    audit-webhook-batch-max-wait audit-webhook-batch-throttle-burst audit-webhook-batch-throttle-enable
    audit-webhook-batch-throttle-qps audit-webhook-config-file audit-webhook-initial-backoff
    audit-webhook-mode audit-webhook-truncate-enabled audit-webhook-truncate-max-batch-size
    audit-webhook-truncate-max-event-size audit-webhook-version authentication-config
    authentication-token-webhook-cache-ttl authentication-token-webhook-config-file
    authentication-token-webhook-version authorization-config authorization-mode
    authorization-policy-file authorization-webhook-cache-authorized-ttl
    authorization-webhook-cache-unauthorized-ttl authorization-webhook-config-file
    authorization-webhook-version bind-address cert-dir client-ca-file cloud-config cloud-provider
    cloud-provider-gce-l7lb-src-cidrs contention-profiling cors-allowed-origins
    debug-socket-path default-not-ready-toleration-seconds default-unreachable-toleration-seconds
    default-watch-cache-size delete-collection-workers disable-admission-plugins
    disable-http2-serving disabled-metrics egress-selector-config-file emulated-version
    enable-admission-plugins enable-aggregator-routing enable-bootstrap-token-auth
    enable-garbage-collector enable-priority-and-fairness encryption-provider-config
    encryption-provider-config-automatic-reload endpoint-reconciler-type etcd-cafile etcd-certfile
    etcd-compaction-interval etcd-count-metric-poll-period etcd-db-metric-poll-interval
    etcd-healthcheck-timeout etcd-keyfile etcd-prefix etcd-readycheck-timeout etcd-servers
    etcd-servers-overrides event-ttl external-hostname feature-gates goaway-chance help
    http2-max-streams-per-connection kubelet-certificate-authority kubelet-client-certificate
    kubelet-client-key kubelet-port kubelet-preferred-address-types kubelet-read-only-port
    kubelet-timeout kubernetes-service-node-port lease-reuse-duration-seconds livez-grace-period
    log-flush-frequency log-json-info-buffer-size log-json-split-stream log-text-info-buffer-size
    log-text-split-stream logging-format max-connection-bytes-per-sec max-mutating-requests-inflight
    max-requests-inflight min-request-timeout oidc-ca-file oidc-client-id oidc-groups-claim
    oidc-groups-prefix oidc-issuer-url oidc-required-claim oidc-signing-algs oidc-username-claim
    oidc-username-prefix peer-advertise-ip peer-advertise-port peer-ca-file permit-address-sharing
    permit-port-sharing profiling proxy-client-cert-file proxy-client-key-file
    request-timeout requestheader-allowed-names requestheader-client-ca-file
    requestheader-extra-headers-prefix requestheader-group-headers requestheader-uid-headers
    requestheader-username-headers runtime-config secure-port service-account-extend-token-expiration
    service-account-issuer service-account-jwks-uri service-account-key-file
    service-account-lookup service-account-max-token-expiration service-account-signing-endpoint
    service-account-signing-key-file service-cluster-ip-range service-node-port-range
    show-hidden-metrics-for-version shutdown-delay-duration shutdown-send-retry-after
    shutdown-watch-termination-grace-period storage-backend storage-initialization-timeout
    storage-media-type strict-transport-security-directives tls-cert-file tls-cipher-suites
    tls-min-version tls-private-key-file tls-sni-cert-key token-auth-file tracing-config-file
    v version vmodule watch-cache watch-cache-sizes
"""
KNOWN_APISERVER_FLAGS = frozenset(_APISERVER_FLAG_NAMES.split())


def _controller_manager_signing(rootfs: Path, apiserver_pod: dict[str, Any]) -> tuple[Path, Path] | None:
    """``--cluster-signing-cert-file``/``--cluster-signing-key-file`` of the controller-manager manifest
    next to the API server's (host paths under ``rootfs``); None when there is none to read."""
    source = ((apiserver_pod.get("metadata") or {}).get("annotations") or {}).get(
        "kubernetes.io/config.source"
    )
    candidates = [rootfs / "etc/kubernetes/manifests/kube-controller-manager.yaml"]
    if source and source.startswith("/"):
        candidates.insert(0, Path(source).parent / "kube-controller-manager.yaml")
    import yaml

    for path in candidates:
        try:
            pod = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        containers = ((pod or {}).get("spec") or {}).get("containers") or []
        flags: dict[str, str] = {}
        for container in containers:
            for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
                if isinstance(arg, str) and arg.startswith("--") and "=" in arg:
                    key, value = arg[2:].split("=", 1)
                    flags[key] = value
        if "cluster-signing-cert-file" in flags and "cluster-signing-key-file" in flags:
            return (
                rootfs / flags["cluster-signing-cert-file"].lstrip("/"),
                rootfs / flags["cluster-signing-key-file"].lstrip("/"),
            )
    return None
