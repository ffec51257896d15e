"""The one module that talks to the Kubernetes API, through the official client.

Every call has an explicit timeout. Retries happen here, with backoff, and only for what can heal
(see :class:`bootstrap.cluster.apierror.Reason`): connection errors, timeouts, 5xx and 429. Everything else
fails at once with its own message: the client library missing, a broken kubeconfig, a certificate
that does not verify, 401, and 403 once the admin.conf escalation has been tried. Watches are owned
here too: list, then watch from the list's resourceVersion, and list again on ``410 Gone`` or a
dropped connection (the client's own ``Watch.stream`` stops retrying once a timeout is given, so the
loop must be ours).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bootstrap.cluster.apierror import ApiError, Gone, Reason, kubeconfig_error, tls_failure

__all__ = [
    "ApiError",
    "Backoff",
    "Credentials",
    "Gone",
    "KubeApi",
    "Reason",
    "admin_api",
    "current_cluster",
    "kubeconfig_credentials",
    "read_kubeconfig",
]

T = TypeVar("T")

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
# A ClusterRoleBinding just created takes a moment to reach the API server's RBAC cache: a 403 right
# after the escalation is retried this long before it counts as final.
RBAC_PROPAGATION = 1.0


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (urllib3 nests the real cause in ``reason`` and ``args``)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]


def _describe(exc: BaseException) -> str:
    """A short, human cause for a connection failure (urllib3 nests the real one)."""
    reason = getattr(exc, "reason", None)
    while reason is not None and getattr(reason, "reason", None) is not None:
        reason = reason.reason
    text = str(reason or exc)
    for marker, said in _KNOWN_CAUSES.items():
        if marker in text:
            return said
    return " ".join(text.split(": ", 1)[-1].split())[:200]


_KNOWN_CAUSES = {
    "Connection refused": "connection refused",
    "timed out": "timed out",
    "Name or service not known": "name or service not known",
}


@dataclass(frozen=True)
class Credentials:
    """What a kubeconfig's current context holds: the server, the CA to trust, the client identity."""

    path: Path
    server: str
    ca_pem: bytes | None  # None: the system's trusted CAs
    ca_subject: str | None
    client_cert_pem: bytes | None
    client_key_pem: bytes | None
    token: str | None = None  # a bearer token (a joining node's bootstrap token); never logged

    @property
    def trusted(self) -> str:
        """Which CA a TLS verification used, for error messages (never key material)."""
        if self.ca_subject is None:
            return f"{self.path} names no CA, so the system's CAs were used"
        return f"{self.path} trusts only the CA {self.ca_subject}"


def read_kubeconfig(path: Path) -> Credentials:
    """The credentials of ``path``'s current context; a typed :class:`ApiError` naming the file and
    the problem (never quoting the content) when the file cannot serve."""
    import yaml

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ApiError(f"{path}: no such file", reason=Reason.KUBECONFIG) from None
    except OSError as exc:
        raise ApiError(f"{path}: cannot read it ({exc.strerror or exc})", reason=Reason.KUBECONFIG) from None
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        # from None: the YAML error quotes the offending text, which may be a key.
        raise kubeconfig_error(path, f"not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise kubeconfig_error(path, "not a mapping")
    return kubeconfig_credentials(path, doc)


def kubeconfig_credentials(path: Path, doc: dict[str, Any]) -> Credentials:
    """The credentials of the current context of the kubeconfig ``doc``, read from ``path`` (file
    references are taken relative to it)."""
    context = _current_context(path, doc)
    cluster = _entry(path, doc, "clusters", "cluster", context.get("cluster"))
    user = _entry(path, doc, "users", "user", context.get("user"))
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise kubeconfig_error(path, "the cluster has no server")
    ca_pem = _data(path, cluster, "certificate-authority")
    return Credentials(
        path=path,
        server=server,
        ca_pem=ca_pem,
        ca_subject=_ca_subject(path, ca_pem) if ca_pem is not None else None,
        client_cert_pem=_data(path, user, "client-certificate"),
        client_key_pem=_data(path, user, "client-key"),
        token=token if isinstance(token := user.get("token"), str) and token else None,
    )


def current_cluster(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """The cluster entry of the kubeconfig ``doc`` (read from ``path``) that the client would use; a
    typed :class:`ApiError` naming the file when its contexts do not lead to one."""
    return _entry(path, doc, "clusters", "cluster", _current_context(path, doc).get("cluster"))


def _current_context(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    name = doc.get("current-context")
    contexts = [c for c in doc.get("contexts") or [] if isinstance(c, dict)]
    chosen: dict[str, Any] | None = contexts[0] if contexts else {}
    if name:
        chosen = next((c for c in contexts if c.get("name") == name), None)
    if chosen is None:
        raise kubeconfig_error(path, f"current-context {name} is not among its contexts")
    context = chosen.get("context") or {}
    if not isinstance(context, dict):
        raise kubeconfig_error(path, f"context {chosen.get('name')} is not a mapping")
    return context


def _entry(path: Path, doc: dict[str, Any], section: str, field: str, name: object) -> dict[str, Any]:
    entries = [e for e in doc.get(section) or [] if isinstance(e, dict)]
    if name:
        chosen = next((e for e in entries if e.get("name") == name), None)
        if chosen is None:
            raise kubeconfig_error(path, f"{field} {name} of the current context is not among its {section}")
    elif entries:
        chosen = entries[0]
    else:
        raise kubeconfig_error(path, f"no {section}")
    value = chosen.get(field)
    if not isinstance(value, dict):
        raise kubeconfig_error(path, f"{section} entry {chosen.get('name')} has no {field}")
    return value


def _data(path: Path, section: dict[str, Any], key: str) -> bytes | None:
    """``<key>-data`` (base64) or the file ``<key>`` names (relative to the kubeconfig)."""
    value = section.get(f"{key}-data")
    if value is not None:
        try:
            return base64.b64decode("".join(str(value).split()), validate=True)
        except (binascii.Error, ValueError):
            raise kubeconfig_error(path, f"{key}-data is not base64") from None
    name = section.get(key)
    if not name:
        return None
    target = path.parent / str(name)
    try:
        return target.read_bytes()
    except OSError as exc:
        raise kubeconfig_error(path, f"{key} {target}: {exc.strerror or exc}") from None


def _ca_subject(path: Path, ca_pem: bytes) -> str:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(ca_pem).subject.rfc4514_string()
    except ValueError:
        raise kubeconfig_error(path, "certificate-authority-data is not a PEM certificate") from None


def _client_missing(exc: ImportError) -> ApiError:
    return ApiError(
        f"the Kubernetes client library cannot be imported ({exc}): install the 'kubernetes' package "
        f"for {sys.executable}",
        reason=Reason.CLIENT_MISSING,
    )


@dataclass
class Backoff:
    """Exponential backoff between retries, bounded by an overall deadline."""

    initial: float = 0.2
    maximum: float = 2.0
    delay: float = 0.0

    def next(self) -> float:
        self.delay = self.initial if self.delay == 0 else min(self.delay * 2, self.maximum)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class KubeApi:
    """A client built from a kubeconfig (TLS verified against its CA), returning plain dicts.

    Building one reads the kubeconfig and imports the client library, so both kinds of permanent
    failure show here, before any request.
    """

    def __init__(
        self, kubeconfig: Path | Credentials, on_forbidden: Callable[[ApiError], str] | None = None
    ) -> None:
        # Credentials held in memory serve a joining node, whose bootstrap token is on no disk yet.
        self.credentials = kubeconfig if isinstance(kubeconfig, Credentials) else read_kubeconfig(kubeconfig)
        try:
            from kubernetes import client
        except ImportError as exc:
            raise _client_missing(exc) from exc

        # Called once, on the first 403, to grant the rights (see :func:`admin_api`); it returns what
        # it did, for the message should the call still be forbidden.
        self._on_forbidden = on_forbidden

        # Not the client's own kubeconfig loader: it copies the client key into $TMPDIR files that a
        # killed run leaves behind. These credentials live in memory and end with the process.
        from bootstrap.cluster.clientconfig import client_configuration

        configuration, memory = client_configuration(self.credentials)
        weakref.finalize(self, memory.close)
        configuration.retries = False  # our retry loop, not urllib3's hidden one
        self._client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self._client)
        self.rbac = client.RbacAuthorizationV1Api(self._client)
        self.apps = client.AppsV1Api(self._client)
        self.requests = 0  # API requests made (for the watch-not-poll benchmark)
        self._watch_response: Any = None

    def close(self) -> None:
        """Abort a watch in progress (from any thread) and release the connections."""
        response = self._watch_response
        if response is not None:
            # Unblocks a reader waiting for the next event. The watch thread may have just closed that
            # response itself (its socket is gone: EBADF): then there is nothing left to unblock.
            with contextlib.suppress(OSError):
                response.shutdown()
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One request, its failure typed; the first 403 triggers the escalation and a retry."""
        try:
            return self._send(func, args, kwargs)
        except ApiError as exc:
            if exc.reason is not Reason.FORBIDDEN or self._on_forbidden is None:
                raise
            forbidden = exc
        return self._escalated(forbidden, func, args, kwargs)

    def _escalated(
        self, forbidden: ApiError, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        escalate, self._on_forbidden = self._on_forbidden, None
        assert escalate is not None
        try:
            done = escalate(forbidden)
        except ApiError as exc:
            if exc.transient:  # the server went away meanwhile: escalate again next time
                self._on_forbidden = escalate
            raise
        deadline = time.monotonic() + RBAC_PROPAGATION
        while True:
            try:
                return self._send(func, args, kwargs)
            except ApiError as exc:
                if exc.reason is not Reason.FORBIDDEN:
                    raise
                if time.monotonic() >= deadline:
                    raise ApiError(f"{exc} (still forbidden {done})", exc.status) from exc
            time.sleep(0.1)

    def _send(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        self.requests += 1
        kwargs.setdefault("_request_timeout", (CONNECT_TIMEOUT, READ_TIMEOUT))
        try:
            return func(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise self._http_error(exc) from exc
        except (HTTPError, OSError) as exc:
            raise self._connection_error(exc) from exc

    def _http_error(self, exc: Any) -> ApiError:
        status = int(exc.status or 0)
        message = f"HTTP {status}: {_status_message(exc.body) or exc.reason}"
        if status == 401:
            message += f" ({self.credentials.server} rejects the credentials in {self.credentials.path})"
        return (Gone if status == 410 else ApiError)(message, status)

    def _connection_error(self, exc: BaseException) -> ApiError:
        import ssl  # here, not at the top: the client's users are imported on nodes with no API yet

        from urllib3.exceptions import NewConnectionError
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        causes = list(_causes(exc))
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return tls_failure(self.credentials.server, cause, self.credentials.trusted)
        # urllib3's NewConnectionError (refused, no route, unknown name) is a kind of its timeout.
        refused = any(isinstance(c, ConnectionError | NewConnectionError) for c in causes)
        if not refused and any(isinstance(c, TimeoutError | Urllib3Timeout) for c in causes):
            return ApiError("timed out", reason=Reason.TIMEOUT)
        return ApiError(_describe(exc), reason=Reason.UNREACHABLE)

    def call_with_retry(self, func: Callable[[], T], deadline: float) -> T:
        """``func()``, retried with backoff on transient failures until ``deadline`` (monotonic);
        anything else (410 included) is raised at once."""
        backoff = Backoff()
        while True:
            try:
                return func()
            except ApiError as exc:
                pause = backoff.next()
                if not exc.transient or time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)

    # Generic object access for the kinds post-init phases write: kind -> (api, method suffix, namespaced).
    _KINDS: ClassVar[dict[str, tuple[str, str, bool]]] = {
        "ConfigMap": ("core", "config_map", True),
        "Secret": ("core", "secret", True),
        "ClusterRole": ("rbac", "cluster_role", False),
        "ClusterRoleBinding": ("rbac", "cluster_role_binding", False),
        "Role": ("rbac", "role", True),
        "RoleBinding": ("rbac", "role_binding", True),
        "ServiceAccount": ("core", "service_account", True),
        "Service": ("core", "service", True),
        "Deployment": ("apps", "deployment", True),
        "DaemonSet": ("apps", "daemon_set", True),
    }

    def _method(self, verb: str, kind: str) -> tuple[Callable[..., Any], bool]:
        api_name, suffix, namespaced = self._KINDS[kind]
        api = getattr(self, api_name)
        return getattr(api, f"{verb}_{'namespaced_' if namespaced else ''}{suffix}"), namespaced

    def read(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        method, namespaced = self._method("read", kind)
        try:
            return _json(self._call(method, name, *((namespace,) if namespaced else ())))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, kind: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        method, namespaced = self._method("create", kind)
        return _json(self._call(method, *((namespace,) if namespaced else ()), body))

    def replace(self, kind: str, namespace: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
        method, namespaced = self._method("replace", kind)
        return _json(self._call(method, name, *((namespace,) if namespaced else ()), body))

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete one object; False when it was not there."""
        method, namespaced = self._method("delete", kind)
        try:
            self._call(method, name, *((namespace,) if namespaced else ()))
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_objects(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        method, _ = self._method("list", kind)
        items: list[dict[str, Any]] = _json(self._call(method, namespace, label_selector=label_selector)).get(
            "items", []
        )
        return items

    def read_node(self, name: str) -> dict[str, Any] | None:
        try:
            return _json(self._call(self.core.read_node, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_nodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = _json(self._call(self.core.list_node)).get("items", [])
        return items

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return _json(self._call(self.core.patch_node, name, patch))

    def list_pods(
        self, namespace: str, field_selector: str | None = None, label_selector: str | None = None
    ) -> dict[str, Any]:
        response = self._call(
            self.core.list_namespaced_pod,
            namespace,
            field_selector=field_selector,
            label_selector=label_selector,
        )
        return _json(response)

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self._call(self.core.read_namespaced_pod, name, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def pod_events(self, namespace: str, pod_name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={pod_name},involvedObject.kind=Pod"
        response = _json(self._call(self.core.list_namespaced_event, namespace, field_selector=selector))
        items: list[dict[str, Any]] = response.get("items", [])
        return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def watch_pods(
        self, namespace: str, resource_version: str, timeout_seconds: int, field_selector: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events after ``resource_version`` until the server ends the stream; raises :class:`Gone`."""
        response = self._call(
            self.core.list_namespaced_pod,
            namespace,
            field_selector=field_selector,
            watch=True,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True,
            _request_timeout=(CONNECT_TIMEOUT, timeout_seconds + READ_TIMEOUT),
        )
        from urllib3.exceptions import HTTPError

        self._watch_response = response
        try:
            for line in _lines(response):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 0)
                    raise (Gone if code == 410 else ApiError)(f"watch: {obj.get('message', obj)}", code)
                yield str(kind), obj
        except (HTTPError, OSError) as exc:
            raise ApiError(f"watch dropped: {_describe(exc)}", reason=Reason.UNREACHABLE) from exc
        finally:
            self._watch_response = None
            response.release_conn()


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _lines(response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _status_message(body: object) -> str:
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return ""
    return str(status.get("message", "")) if isinstance(status, dict) else ""


def admin_api(kubernetes_dir: Path) -> KubeApi:
    """A client with admin.conf, as kubeadm uses it.

    admin.conf's user is in group kubeadm:cluster-admins, which has no rights until the
    ClusterRoleBinding kubeadm:cluster-admins exists. On the first 403 that binding is created with
    super-admin.conf (group system:masters), and the call is retried, as kubeadm does. Without
    super-admin.conf, or when it may not create the binding either, the 403 is final.
    """
    admin = kubernetes_dir / "admin.conf"
    super_admin = kubernetes_dir / "super-admin.conf"

    def ensure_binding(forbidden: ApiError) -> str:
        from bootstrap.cluster.objects import cluster_admins_binding

        if not super_admin.exists():
            raise ApiError(
                f"{forbidden} ({admin}'s group kubeadm:cluster-admins has no rights yet, and "
                f"{super_admin}, which would grant them, does not exist)",
                forbidden.status,
            )
        api = KubeApi(super_admin)
        try:
            api.create("ClusterRoleBinding", None, cluster_admins_binding())
        except ApiError as exc:
            if exc.status == 409:
                return "although ClusterRoleBinding kubeadm:cluster-admins exists"
            if exc.transient:
                raise
            raise ApiError(
                f"{forbidden} (granting {admin}'s group its rights with {super_admin} failed: {exc})",
                exc.status,
                exc.reason,
            ) from exc
        finally:
            api.close()
        return f"after creating ClusterRoleBinding kubeadm:cluster-admins with {super_admin}"

    return KubeApi(admin, on_forbidden=ensure_binding)
