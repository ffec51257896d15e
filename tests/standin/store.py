"""The stand-in API server's storage: objects, one global resourceVersion counter and an event log.

It plays etcd's part: it outlives a server restart, every write gets the next revision, and the event
log can be compacted (a watch or list from before the compaction gets ``410 Gone``).
"""

from __future__ import annotations

import copy
import datetime
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_EVENTS = 10_000
NAMESPACE_MISMATCH = "the namespace of the provided object does not match the namespace sent on the request"


class ApiError(Exception):
    """An API error, rendered by the server as a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class Resource:
    """One REST resource: ``pods`` in ``""/v1`` etc."""

    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    # Whether DELETE answers with the object (pods, namespaces) or a Status (most others).
    returns_deleted: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def qualified(self) -> str:
        return f"{self.name}.{self.group}" if self.group else self.name


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), True, True),
    Resource("", "v1", "pods", "Pod", True, ("po",), True, True),
    Resource("", "v1", "nodes", "Node", False, ("no",), True),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "services", "Service", True, ("svc",), True),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), True),
    Resource(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        ("csr",),
        True,
    ),
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    resource: Resource
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    previous: Obj | None = None


@dataclass
class Store:
    """Thread-safe objects by (resource, namespace, name); ``cond`` is notified on every write."""

    objects: dict[tuple[Resource, str, str], Obj] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    rv: int = 0
    # Events with rv <= compacted are gone: a watch/list from an older resourceVersion gets 410.
    compacted: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.cond = threading.Condition(self.lock)
        for ns in DEFAULT_NAMESPACES:
            if not self.get_or_none(namespace_resource(), "", ns):
                self.create(namespace_resource(), "", {"metadata": {"name": ns}})

    # -- reads ------------------------------------------------------------------------------------
    def get_or_none(self, res: Resource, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects.get((res, namespace if res.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, res: Resource, namespace: str, name: str) -> Obj:
        obj = self.get_or_none(res, namespace, name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def list(
        self, res: Resource, namespace: str | None, match: Callable[[Obj], bool] = lambda _: True
    ) -> tuple[list[Obj], int]:
        """Matching objects sorted by (namespace, name), and the store revision they were read at."""
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (r, ns, _), obj in sorted(self.objects.items(), key=lambda kv: kv[0][1:])
                if r == res and (namespace is None or ns == namespace) and match(obj)
            ]
            return items, self.rv

    def events_after(self, rv: int) -> list[Event]:
        """Logged events with a revision above ``rv``; raises 410 if ``rv`` predates the log."""
        with self.lock:
            if rv < self.compacted:
                raise gone(rv, self.compacted)
            return [e for e in self.events if e.rv > rv]

    # -- writes -----------------------------------------------------------------------------------
    def _commit(self, res: Resource, type_: str, obj: Obj, previous: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append(Event(self.rv, res, type_, copy.deepcopy(obj), previous))
        if len(self.events) > MAX_EVENTS:
            dropped = self.events[: len(self.events) - MAX_EVENTS]
            del self.events[: len(dropped)]
            self.compacted = dropped[-1].rv
        self.cond.notify_all()
        return copy.deepcopy(obj)

    def create(self, res: Resource, namespace: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise invalid(res, "", "metadata: must be an object")
        with self.lock:
            if res.namespaced:
                body_ns = meta.get("namespace")
                if body_ns and body_ns != namespace:
                    raise ApiError(400, "BadRequest", NAMESPACE_MISMATCH)
                meta["namespace"] = namespace
                if self.get_or_none(namespace_resource(), "", namespace) is None:
                    raise not_found(namespace_resource(), namespace)
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise invalid(res, "", "metadata.name: Required value: name or generateName is required")
                for _ in range(100):
                    candidate = prefix + uuid.uuid4().hex[:5]
                    if self.get_or_none(res, namespace, candidate) is None:
                        meta["name"] = candidate
                        break
            name = meta["name"]
            if res.group == "rbac.authorization.k8s.io":
                # RBAC names are path segments, as in the real server: "kubeadm:get-nodes" is valid.
                if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "%" in name:
                    raise invalid(
                        res, str(name), f"metadata.name: Invalid value: {name!r}: not a path segment"
                    )
            elif not isinstance(name, str) or len(name) > 253 or not NAME_RE.match(name):
                raise invalid(
                    res,
                    str(name),
                    f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                    "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            if self.get_or_none(res, namespace, name) is not None:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.qualified()} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.name}
                    if res.group
                    else {"name": name, "kind": res.name},
                )
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta.pop("deletionTimestamp", None)
            meta.pop("resourceVersion", None)
            apply_defaults(res, obj)
            if dry_run:
                return obj
            return self._commit(res, "ADDED", obj, None)

    def update(
        self,
        res: Resource,
        namespace: str,
        name: str,
        obj: Obj,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        """A PUT: a stale ``metadata.resourceVersion`` is a 409; ``status`` only via the subresource."""
        obj = copy.deepcopy(obj)
        with self.lock:
            current = self.get(res, namespace, name)
            meta = obj.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                    f"({name})",
                )
            if res.namespaced and meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", NAMESPACE_MISMATCH)
            given_rv = meta.get("resourceVersion")
            if given_rv and str(given_rv) != current["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if subresource == "status":
                new = copy.deepcopy(current)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = obj
                new["apiVersion"], new["kind"] = res.api_version, res.kind
                if res.status_subresource:
                    if "status" in current:
                        new["status"] = current["status"]
                    else:
                        new.pop("status", None)
                # System-owned metadata cannot change through an update.
                for key in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
                    if key in current["metadata"]:
                        new["metadata"][key] = current["metadata"][key]
                    else:
                        new["metadata"].pop(key, None)
                new["metadata"]["name"] = name
                if res.namespaced:
                    new["metadata"]["namespace"] = namespace
                if "generation" in current["metadata"] and new.get("spec") != current.get("spec"):
                    new["metadata"]["generation"] = current["metadata"]["generation"] + 1
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if res.name == "secrets":
                _fold_string_data(new)
            if new == current and not dry_run:
                return current  # a no-op update does not bump the revision (as etcd/apiserver)
            if dry_run:
                return new
            meta = new["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                return self._commit(res, "DELETED", new, current)
            return self._commit(res, "MODIFIED", new, current)

    def delete(
        self, res: Resource, namespace: str, name: str, preconditions: dict[str, Any] | None = None
    ) -> Obj:
        """Remove the object (or, with finalizers, mark it for deletion); returns its last state."""
        with self.lock:
            current = self.get(res, namespace, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified()} "{name}": Precondition failed: '
                    f"UID in precondition: {pre['uid']}, UID in object meta: {current['metadata']['uid']}",
                    {"name": name, "kind": res.name},
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != current["metadata"]["resourceVersion"]
            ):
                raise conflict(res, name)
            if current["metadata"].get("finalizers"):
                if current["metadata"].get("deletionTimestamp"):
                    return current
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                return self._commit(res, "MODIFIED", new, current)
            if res.name == "namespaces":
                for key in [k for k in self.objects if k[0].namespaced and k[1] == name]:
                    doomed = copy.deepcopy(self.objects[key])
                    self._commit(key[0], "DELETED", doomed, copy.deepcopy(doomed))
            return self._commit(res, "DELETED", copy.deepcopy(current), current)

    def compact(self) -> None:
        """Drop the event log up to now: watches/lists from any earlier revision get 410 Gone."""
        with self.lock:
            self.compacted = self.rv
            self.events.clear()


def namespace_resource() -> Resource:
    return RESOURCES[0]


def resource_by_name(group: str, version: str, name: str) -> Resource | None:
    for res in RESOURCES:
        if res.group == group and res.version == version and name in (res.name, res.singular):
            return res
    return None


def not_found(res: Resource, name: str) -> ApiError:
    details = {"name": name, "kind": res.name}
    if res.group:
        details["group"] = res.group
    return ApiError(404, "NotFound", f'{res.qualified()} "{name}" not found', details)


def conflict(res: Resource, name: str) -> ApiError:
    details = {"name": name, "kind": res.name}
    if res.group:
        details["group"] = res.group
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified()} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details,
    )


def invalid(res: Resource, name: str, cause: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{res.kind} "{name}" is invalid: {cause}',
        {"name": name, "kind": res.kind, "group": res.group},
    )


def gone(rv: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({oldest + 1})")


def apply_defaults(res: Resource, obj: Obj) -> None:
    """The few server-side defaults clients look at."""
    if res.name == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    elif res.name == "pods":
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            image = str(container.get("image", ""))
            latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")
        obj["metadata"].setdefault("generation", 1)
    elif res.name == "secrets":
        obj.setdefault("type", "Opaque")
        _fold_string_data(obj)
    elif res.name in ("deployments", "daemonsets"):
        obj["metadata"].setdefault("generation", 1)


def _fold_string_data(secret: Obj) -> None:
    """``stringData`` is write-only, as in the real API server: merged into ``data`` (base64), winning
    over a ``data`` key of the same name, and never stored."""
    import base64

    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = dict(secret.get("data") or {})
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})
        secret["data"] = data
