"""The component spec table: one row per control-plane component, each fact about it stated once.

A row gives the component's name, the ports it binds and the flag that moves each, where its health
endpoint is served (scheme, the flag naming the host, the port, the path), its kubeconfig, and its
kubelet probes (paths and timings; where they are served comes from its health row and its flags).
What makes a pod "ours" is :func:`is_our_pod`.

Flags are looked up in a ``Mapping[str, str]`` (``dict(flags)``, so the last value of a repeated
flag wins, as in the components' own flag parsers); this keeps the table free of imports.
Standard library only: preflight and the health checks read it at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bootstrap.config.hostport import APISERVER_PORT

# The labels of every static pod we write; a pod with its component's name and these labels is ours.
CONTROL_PLANE_TIER = "control-plane"
# From v1.34 the probes name their port; this is the name.
PROBE_PORT_NAME = "probe-port"

LIVEZ = "/livez"
READYZ = "/readyz"
HEALTHZ = "/healthz"


@dataclass(frozen=True)
class Port:
    """A port a component binds, and the flag that moves it.

    ``urls``: the flag's value is a comma-separated list of URLs (etcd), otherwise a port number
    whose address is in ``bind_flag``. ``preflight``: the preflight checks make sure it is free.
    """

    role: str
    default: int
    flag: str
    urls: bool = False
    bind_flag: str | None = None
    preflight: bool = True


@dataclass(frozen=True)
class Health:
    """Where the component reports its health: on its ``port`` row, at ``host_flag`` (None: the host
    is in the port's URL), checked at ``path`` when the manifest's probe names none; ``verify``: TLS
    checked against the cluster CA with admin.conf's client certificate."""

    scheme: str
    port: str
    host_flag: str | None
    path: str
    verify: bool


@dataclass(frozen=True)
class Timings:
    """One kind of probe's timings; ``failure`` None: computed from the config (the startup probe)."""

    initial_delay: int
    timeout: int
    failure: int | None
    period: int


# The same for every component, as kubeadm renders them.
LIVENESS_TIMINGS = Timings(initial_delay=10, timeout=15, failure=8, period=10)
READINESS_TIMINGS = Timings(initial_delay=0, timeout=15, failure=3, period=1)
STARTUP_TIMINGS = Timings(initial_delay=10, timeout=15, failure=None, period=10)


@dataclass(frozen=True)
class ProbeCheck:
    """One of the kubelet's probes of a component: the path it asks, and its timings."""

    path: str
    timings: Timings


@dataclass(frozen=True)
class Probes:
    """The kubelet's three probes of a component (no readiness probe: None)."""

    liveness: ProbeCheck
    readiness: ProbeCheck | None
    startup: ProbeCheck


def _probes(liveness: str, readiness: str | None, startup: str) -> Probes:
    return Probes(
        ProbeCheck(liveness, LIVENESS_TIMINGS),
        ProbeCheck(readiness, READINESS_TIMINGS) if readiness else None,
        ProbeCheck(startup, STARTUP_TIMINGS),
    )


@dataclass(frozen=True)
class ComponentSpec:
    """Everything about one control-plane component that is not computed from the config."""

    name: str
    ports: tuple[Port, ...]
    health: Health
    kubeconfig: str | None
    probes: Probes
    # Kubernetes minor versions before ``older_probes[0]`` have ``older_probes[1]`` instead.
    older_probes: tuple[int, Probes] | None = None

    def kubeconfig_file(self) -> str:
        """The kubeconfig of a component that has one."""
        assert self.kubeconfig is not None, f"{self.name} has no kubeconfig"
        return self.kubeconfig

    def port(self, role: str) -> Port:
        return next(p for p in self.ports if p.role == role)

    def probes_for(self, minor: int) -> Probes:
        if self.older_probes is not None and minor < self.older_probes[0]:
            return self.older_probes[1]
        return self.probes

    def health_address(self, flags: Mapping[str, str]) -> tuple[str | None, int | None, str]:
        """Host and port of the health endpoint as ``flags`` give them (None where they do not),
        and its scheme."""
        port = self.port(self.health.port)
        if self.health.host_flag is None:
            # The first URL the component listens on for this port.
            first = (flags.get(port.flag) or "").split(",")[0]
            url = urlsplit(first)
            return url.hostname, url.port, url.scheme or self.health.scheme
        value = flags.get(port.flag)
        return flags.get(self.health.host_flag) or None, _port_number(value), self.health.scheme

    def listeners(self, flags: Mapping[str, str]) -> dict[int, list[str]]:
        """port -> addresses the component binds, for the ports preflight checks; flags that are
        absent take the component's own defaults (a missing address binds every interface)."""
        found: dict[int, list[str]] = {}
        for port in self.ports:
            if not port.preflight:
                continue
            if port.urls:
                for url in (flags.get(port.flag) or f"http://localhost:{port.default}").split(","):
                    parts = urlsplit(url.strip())
                    try:
                        number = parts.port
                    except ValueError:
                        number = None
                    if number is not None:
                        found.setdefault(number, []).append(_bind_host(parts.hostname))
                continue
            number = _port_number(flags.get(port.flag))
            number = port.default if number is None else number
            bound = flags.get(port.bind_flag) if port.bind_flag else None
            found.setdefault(number, []).append(_bind_host(bound))
        return found


def _port_number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _bind_host(host: str | None) -> str:
    """The address a listener binds: the wildcard when none is given."""
    if not host:
        return "0.0.0.0"
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


_SECURE_PROBES = _probes(liveness=LIVEZ, readiness=READYZ, startup=LIVEZ)
_HEALTHZ_PROBES = _probes(liveness=HEALTHZ, readiness=None, startup=HEALTHZ)

ETCD = ComponentSpec(
    name="etcd",
    ports=(
        Port("client", 2379, "listen-client-urls", urls=True),
        Port("peer", 2380, "listen-peer-urls", urls=True),
        # Plain HTTP on loopback by default; kubeadm does not check it is free.
        Port("metrics", 2381, "listen-metrics-urls", urls=True, preflight=False),
    ),
    health=Health(scheme="http", port="metrics", host_flag=None, path=READYZ, verify=False),
    kubeconfig=None,
    probes=_probes(liveness=LIVEZ, readiness=READYZ, startup=READYZ),
)
APISERVER = ComponentSpec(
    name="kube-apiserver",
    ports=(Port("secure", APISERVER_PORT, "secure-port", bind_flag="bind-address"),),
    health=Health(scheme="https", port="secure", host_flag="advertise-address", path=READYZ, verify=True),
    kubeconfig=None,
    probes=_SECURE_PROBES,
)
CONTROLLER_MANAGER = ComponentSpec(
    name="kube-controller-manager",
    ports=(Port("secure", 10257, "secure-port", bind_flag="bind-address"),),
    health=Health(scheme="https", port="secure", host_flag="bind-address", path=HEALTHZ, verify=False),
    kubeconfig="/etc/kubernetes/controller-manager.conf",
    probes=_HEALTHZ_PROBES,
)
SCHEDULER = ComponentSpec(
    name="kube-scheduler",
    ports=(Port("secure", 10259, "secure-port", bind_flag="bind-address"),),
    health=Health(scheme="https", port="secure", host_flag="bind-address", path=HEALTHZ, verify=False),
    kubeconfig="/etc/kubernetes/scheduler.conf",
    probes=_SECURE_PROBES,
    older_probes=(32, _HEALTHZ_PROBES),
)

SPECS: dict[str, ComponentSpec] = {s.name: s for s in (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER)}


def is_our_pod(component: str, pod: Mapping[str, Any] | None) -> bool:
    """A static pod we wrote: a Pod named after ``component``, labelled as our control-plane tier."""
    if pod is None or pod.get("kind") != "Pod":
        return False
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("name") != component:
        return False
    labels = metadata.get("labels")
    return (
        isinstance(labels, dict)
        and labels.get("component") == component
        and labels.get("tier") == CONTROL_PLANE_TIER
    )


def our_component(pod: Mapping[str, Any] | None) -> str | None:
    """The component ``pod`` is our static pod of, if any."""
    return next((name for name in SPECS if is_our_pod(name, pod)), None)
