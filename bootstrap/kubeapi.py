"""The one module that talks to the Kubernetes API, through the official client.

Every call has an explicit timeout. Retries happen here, with backoff, and only for what can heal:
connection errors, 5xx and 429. Watches are owned here too: list, then watch from the list's
resourceVersion, and list again on ``410 Gone`` or a dropped connection (the client's own
``Watch.stream`` stops retrying once a timeout is given, so the loop must be ours).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bootstrap.errors import PhaseError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0


class ApiError(PhaseError):
    """An API call failed; ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.status == 0


class Gone(ApiError):
    """The resourceVersion is too old (410): list again."""


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
    "CERTIFICATE_VERIFY_FAILED": "TLS certificate verify failed",
    "timed out": "timed out",
    "Name or service not known": "name or service not known",
}


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
    """A client built from a kubeconfig (TLS verified against its CA), returning plain dicts."""

    def __init__(self, kubeconfig: Path, on_forbidden: Callable[[], None] | None = None) -> None:
        from kubernetes import client

        from bootstrap.clientconfig import client_configuration

        # Called once, on the first 403, before retrying that call (see :func:`admin_api`).
        self._on_forbidden = on_forbidden

        # Not the client's own kubeconfig loader: it copies the client key into $TMPDIR files that a
        # killed run leaves behind. These credentials live in memory and end with the process.
        configuration, credentials = client_configuration(kubeconfig)
        weakref.finalize(self, credentials.close)
        configuration.retries = False  # our retry loop, not urllib3's hidden one
        self._client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self._client)
        self.rbac = client.RbacAuthorizationV1Api(self._client)
        self.requests = 0  # API requests made (for the watch-not-poll benchmark)
        self._watch_response: Any = None

    def close(self) -> None:
        """Abort a watch in progress (from any thread) and release the connections."""
        response = self._watch_response
        if response is not None:
            response.shutdown()  # unblocks a reader waiting for the next event
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        self.requests += 1
        kwargs.setdefault("_request_timeout", (CONNECT_TIMEOUT, READ_TIMEOUT))
        try:
            try:
                return func(*args, _preload_content=False, **kwargs)
            except ApiException as exc:
                if exc.status != 403 or self._on_forbidden is None:
                    raise
                escalate, self._on_forbidden = self._on_forbidden, None
                escalate()
                self.requests += 1
                return func(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            message = f"HTTP {exc.status}: {_status_message(exc.body) or exc.reason}"
            raise (Gone if exc.status == 410 else ApiError)(message, exc.status or 0) from exc
        except (HTTPError, OSError) as exc:
            raise ApiError(_describe(exc)) from exc

    def call_with_retry(self, func: Callable[[], T], deadline: float) -> T:
        """``func()``, retried with backoff on unreachable/5xx/429 until ``deadline`` (monotonic)."""
        backoff = Backoff()
        while True:
            try:
                return func()
            except Gone:
                raise
            except ApiError as exc:
                retryable = exc.unreachable or exc.status in RETRYABLE_STATUS
                pause = backoff.next()
                if not retryable or time.monotonic() + pause >= deadline:
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

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return _json(self._call(self.core.patch_node, name, patch))

    def list_pods(self, namespace: str, field_selector: str | None = None) -> dict[str, Any]:
        response = self._call(self.core.list_namespaced_pod, namespace, field_selector=field_selector)
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
            raise ApiError(f"watch dropped: {_describe(exc)}") from exc
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
    super-admin.conf (group system:masters), and the call is retried, as kubeadm does.
    """

    def ensure_binding() -> None:
        from bootstrap.postinit import cluster_admins_binding

        super_admin = kubernetes_dir / "super-admin.conf"
        if not super_admin.exists():
            return
        api = KubeApi(super_admin)
        try:
            api.create("ClusterRoleBinding", None, cluster_admins_binding())
        except ApiError as exc:
            if exc.status != 409:
                raise
        finally:
            api.close()

    return KubeApi(kubernetes_dir / "admin.conf", on_forbidden=ensure_binding)
