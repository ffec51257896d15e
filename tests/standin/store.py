"""The stand-in API server's storage: objects, one global resourceVersion counter and an event log.

It plays etcd's part: it outlives a server restart, every write gets the next revision, and the event
log can be compacted (a watch or list from before the compaction gets ``410 Gone``).
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
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


class StaleRead(Exception):
    """A conditional write found the object changed since it was read: another API server wrote it
    in between (only a store shared by several servers raises it)."""


# A write whose read went stale is redone from a fresh read this many times, as the real API server's
# update loop does, unless the client pinned a resourceVersion (then the answer is 409).
WRITE_ATTEMPTS = 10


@dataclass
class Store:
    """Thread-safe objects by (resource, namespace, name); ``cond`` is notified on every write.

    The validation and defaulting of writes (names, namespaces, generation, finalizers, no-op
    updates, preconditions) live here; where the objects persist is left to :meth:`_insert`,
    :meth:`_replace` and :meth:`_remove`. This class keeps them in memory; ``EtcdStore``
    (tests/standin/etcd_store.py) keeps them in a real etcd. ``consistent`` on a read asks for the
    latest committed state, as a client's GET or LIST does; without it a read may come from a cache
    that lags a shared backend by a moment, as the real API server's informers do (authorization,
    controllers). In memory every read is both.
    """

    objects: dict[tuple[Resource, str, str], Obj] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    rv: int = 0
    # Events with rv <= compacted are gone: a watch/list from an older resourceVersion gets 410.
    compacted: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    # The API server's --service-cluster-ip-range (empty: any address is in range).
    service_cidrs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cond = threading.Condition(self.lock)
        self.ensure_default_namespaces()

    def ensure_default_namespaces(self) -> None:
        for ns in DEFAULT_NAMESPACES:
            if self.get_or_none(namespace_resource(), "", ns, consistent=True) is None:
                try:
                    self.create(namespace_resource(), "", {"metadata": {"name": ns}})
                except ApiError as err:
                    if err.reason != "AlreadyExists":  # another server sharing the backend made it
                        raise

    def health(self) -> str | None:
        """Why the store cannot serve now (the API server's ``etcd`` health check); None: it can."""
        return None

    # -- reads ------------------------------------------------------------------------------------
    def get_or_none(
        self, res: Resource, namespace: str, name: str, *, consistent: bool = False
    ) -> Obj | None:
        with self.lock:
            obj = self.objects.get((res, namespace if res.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, res: Resource, namespace: str, name: str, *, consistent: bool = False) -> Obj:
        obj = self.get_or_none(res, namespace, name, consistent=consistent)
        if obj is None:
            raise not_found(res, name)
        return obj

    def list(
        self,
        res: Resource,
        namespace: str | None,
        match: Callable[[Obj], bool] = lambda _: True,
        *,
        consistent: bool = False,
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

    # -- the local state and its event log -----------------------------------------------------------
    def _record(self, rv: int, res: Resource, type_: str, obj: Obj, previous: Obj | None) -> None:
        """Apply one committed change at revision ``rv`` to ``objects`` and the event log (lock held)."""
        self.rv = max(self.rv, rv)
        key = (res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append(Event(rv, res, type_, copy.deepcopy(obj), previous))
        if len(self.events) > MAX_EVENTS:
            dropped = self.events[: len(self.events) - MAX_EVENTS]
            del self.events[: len(dropped)]
            self.compacted = dropped[-1].rv
        self.cond.notify_all()

    def _commit(self, res: Resource, type_: str, obj: Obj, previous: Obj | None) -> Obj:
        with self.lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(self.rv, res, type_, obj, previous)
            return copy.deepcopy(obj)

    # -- persistence (what a store backed by something else replaces) ---------------------------------
    def _insert(self, res: Resource, obj: Obj) -> Obj:
        """Persist a new object (its name was free when read); returns it as stored."""
        return self._commit(res, "ADDED", obj, None)

    def _replace(self, res: Resource, new: Obj, current: Obj) -> Obj:
        """Persist ``new`` over ``current``; :class:`StaleRead` if ``current`` is no longer stored."""
        return self._commit(res, "MODIFIED", new, current)

    def _remove(self, res: Resource, last: Obj, current: Obj) -> Obj:
        """Delete ``current`` (a namespace with its contents); returns ``last`` as the deleted state;
        :class:`StaleRead` if ``current`` is no longer stored."""
        with self.lock:
            if res.name == "namespaces":
                name = current["metadata"]["name"]
                for key in [k for k in self.objects if k[0].namespaced and k[1] == name]:
                    doomed = copy.deepcopy(self.objects[key])
                    self._commit(key[0], "DELETED", doomed, copy.deepcopy(doomed))
            return self._commit(res, "DELETED", last, current)

    # -- writes -----------------------------------------------------------------------------------
    def create(self, res: Resource, namespace: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        with self.lock:
            obj = self._new_object(res, namespace, obj)
            if dry_run:
                return obj
            return self._insert(res, obj)

    def _new_object(self, res: Resource, namespace: str, obj: Obj) -> Obj:
        """``obj`` as a create stores it: validated, named, defaulted (409 if the name is taken)."""
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise invalid(res, "", "metadata: must be an object")
        if res.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != namespace:
                raise ApiError(400, "BadRequest", NAMESPACE_MISMATCH)
            meta["namespace"] = namespace
            if self.get_or_none(namespace_resource(), "", namespace, consistent=True) is None:
                raise not_found(namespace_resource(), namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(res, "", "metadata.name: Required value: name or generateName is required")
            for _ in range(100):
                candidate = prefix + uuid.uuid4().hex[:5]
                if self.get_or_none(res, namespace, candidate, consistent=True) is None:
                    meta["name"] = candidate
                    break
        name = meta["name"]
        if res.group == "rbac.authorization.k8s.io":
            # RBAC names are path segments, as in the real server: "kubeadm:get-nodes" is valid.
            if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "%" in name:
                raise invalid(res, str(name), f"metadata.name: Invalid value: {name!r}: not a path segment")
        elif not isinstance(name, str) or len(name) > 253 or not NAME_RE.match(name):
            raise invalid(
                res,
                str(name),
                f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        if self.get_or_none(res, namespace, name, consistent=True) is not None:
            raise already_exists(res, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta.pop("deletionTimestamp", None)
        meta.pop("resourceVersion", None)
        if res.name == "services":
            self._check_cluster_ip(res, obj)
        apply_defaults(res, obj)
        return obj

    def _check_cluster_ip(self, res: Resource, obj: Obj) -> None:
        """As the real server's Service IP allocator: a given ``spec.clusterIP`` is an address of the
        service range that no other Service holds ("None" makes a headless Service)."""
        name = obj["metadata"]["name"]
        wanted = (obj.get("spec") or {}).get("clusterIP")
        if not wanted or wanted == "None":
            return
        field_ = f"spec.clusterIP: Invalid value: {wanted!r}"
        try:
            address = ipaddress.ip_address(wanted)
        except ValueError:
            raise invalid(res, name, f"{field_}: must be a valid IP address") from None
        ranges = [ipaddress.ip_network(c.strip(), strict=False) for c in self.service_cidrs]
        if ranges and not any(address.version == r.version and address in r for r in ranges):
            valid = ",".join(self.service_cidrs)
            raise invalid(
                res,
                name,
                f"{field_}: provided IP is not in the valid range. The range of valid IPs is {valid}",
            )
        for (other_res, _, _), other in list(self.objects.items()):
            if other_res.name == "services" and (other.get("spec") or {}).get("clusterIP") == wanted:
                raise invalid(res, name, f"{field_}: provided IP is already allocated")

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
        for _ in range(WRITE_ATTEMPTS):
            with self.lock:
                current = self.get(res, namespace, name, consistent=True)
                new = self._updated(res, namespace, name, copy.deepcopy(obj), current, subresource)
                if new == current and not dry_run:
                    return current  # a no-op update does not bump the revision (as etcd/apiserver)
                if dry_run:
                    return new
                meta = new["metadata"]
                try:
                    if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                        return self._remove(res, new, current)
                    return self._replace(res, new, current)
                except StaleRead:
                    if _pinned_version(obj):
                        raise conflict(res, name) from None
        raise conflict(res, name)

    def _updated(
        self, res: Resource, namespace: str, name: str, obj: Obj, current: Obj, subresource: str
    ) -> Obj:
        """``current`` as the PUT of ``obj`` leaves it (409 if ``obj`` names another resourceVersion)."""
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
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
        if res.name == "services" and subresource != "status":
            _keep_cluster_ip(res, name, new, current)
        return new

    def delete(
        self, res: Resource, namespace: str, name: str, preconditions: dict[str, Any] | None = None
    ) -> Obj:
        """Remove the object (or, with finalizers, mark it for deletion); returns its last state."""
        pre = preconditions or {}
        for _ in range(WRITE_ATTEMPTS):
            with self.lock:
                current = self.get(res, namespace, name, consistent=True)
                if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                    raise ApiError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {res.qualified()} "{name}": Precondition '
                        f"failed: UID in precondition: {pre['uid']}, UID in object meta: "
                        f"{current['metadata']['uid']}",
                        {"name": name, "kind": res.name},
                    )
                if (
                    pre.get("resourceVersion")
                    and pre["resourceVersion"] != current["metadata"]["resourceVersion"]
                ):
                    raise conflict(res, name)
                try:
                    if current["metadata"].get("finalizers"):
                        if current["metadata"].get("deletionTimestamp"):
                            return current
                        new = copy.deepcopy(current)
                        new["metadata"]["deletionTimestamp"] = now()
                        new["metadata"]["deletionGracePeriodSeconds"] = 0
                        return self._replace(res, new, current)
                    return self._remove(res, copy.deepcopy(current), current)
                except StaleRead:
                    if pre.get("resourceVersion"):
                        raise conflict(res, name) from None
        raise conflict(res, name)

    def compact(self) -> None:
        """Drop the event log up to now: watches/lists from any earlier revision get 410 Gone."""
        with self.lock:
            self.compacted = self.rv
            self.events.clear()


def _pinned_version(obj: Obj) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, dict) and bool(meta.get("resourceVersion"))


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


def already_exists(res: Resource, name: str) -> ApiError:
    details = {"name": name, "kind": res.name}
    if res.group:
        details["group"] = res.group
    return ApiError(409, "AlreadyExists", f'{res.qualified()} "{name}" already exists', details)


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
    elif res.name == "services":
        _service_defaults(obj)


def _service_defaults(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    address = spec.get("clusterIP")
    if address and address != "None":
        spec.setdefault("clusterIPs", [address])
        family = "IPv6" if ":" in address else "IPv4"
        spec.setdefault("ipFamilies", [family])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _keep_cluster_ip(res: Resource, name: str, new: Obj, current: Obj) -> None:
    """``spec.clusterIP`` is immutable: an update leaving it out keeps it, one changing it is refused."""
    had = (current.get("spec") or {}).get("clusterIP")
    spec = new.setdefault("spec", {})
    wanted = spec.get("clusterIP")
    if had and wanted and wanted != had:
        raise invalid(res, name, f"spec.clusterIP: Invalid value: {wanted!r}: field is immutable")
    if had:
        spec["clusterIP"] = had
    _service_defaults(new)


def _fold_string_data(secret: Obj) -> None:
    """``stringData`` is write-only, as in the real API server: merged into ``data`` (base64), winning
    over a ``data`` key of the same name, and never stored."""
    import base64

    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = dict(secret.get("data") or {})
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})
        secret["data"] = data
