"""Everything the templates need for each control-plane pod: image, command, probes, volumes, env.

Pure: the host is seen only through ``host_dir_exists`` (optional CA directories) and the proxy
variables handed in, so renderings are reproducible and testable.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bootstrap.components import flags as F
from bootstrap.components.spec import PROBE_PORT_NAME, SPECS, STARTUP_TIMINGS, ProbeCheck
from bootstrap.components.versions import Features
from bootstrap.config import Config
from bootstrap.config.kubeversion import minor_of
from bootstrap.config.model import EnvVar, HostPathMount, LocalEtcd

# kubeadm mounts these into the apiserver and controller-manager when they exist on the host.
OPTIONAL_CA_DIRS = (
    "/etc/pki/ca-trust",
    "/etc/pki/tls/certs",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
)
SYSTEM_CA_DIR = "/etc/ssl/certs"
FLEXVOLUME_DIR = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
PROXY_ENV_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@dataclass(frozen=True)
class Volume:
    name: str
    host_path: str
    mount_path: str
    read_only: bool
    path_type: str


@dataclass(frozen=True)
class Probe:
    """Where the kubelet probes a component (no host: the pod IP), named ``port_name`` when set,
    and its liveness, readiness (or None) and startup checks (the startup one's failure threshold
    computed from the config)."""

    host: str
    port: int
    scheme: str
    port_name: str | None
    liveness: ProbeCheck
    readiness: ProbeCheck | None
    startup: ProbeCheck


@dataclass
class PodInputs:
    """The per-component values the templates lay out (constants live in the templates)."""

    component: str
    image: str
    flags: list[F.Flag]
    probe: Probe
    volumes: list[Volume]
    env: list[EnvVar]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return F.command(self.component, self.flags)


@dataclass(frozen=True)
class EtcdJoin:
    """A stacked etcd member joining an existing cluster: the ``--initial-cluster`` it was added with."""

    initial_cluster: str


@dataclass(frozen=True)
class HostView:
    """What rendering may know about the host: which optional CA dirs exist, the proxy variables."""

    dir_exists: Callable[[str], bool]
    proxy_env: Mapping[str, str]
    external_ca: bool = False


def _volume(name: str, path: str, path_type: str, read_only: bool = True) -> Volume:
    return Volume(name, path, path, read_only, path_type)


def _ca_volumes(host: HostView) -> list[Volume]:
    volumes = [_volume("ca-certs", SYSTEM_CA_DIR, "DirectoryOrCreate")]
    for path in OPTIONAL_CA_DIRS:
        if host.dir_exists(path):
            volumes.append(_volume(path.strip("/").replace("/", "-"), path, "DirectoryOrCreate"))
    return volumes


def _with_extra(defaults: Sequence[Volume], extra: Sequence[HostPathMount]) -> list[Volume]:
    by_name = {v.name: v for v in defaults}
    for mount in extra:
        by_name[mount.name] = Volume(
            mount.name, mount.host_path, mount.mount_path, mount.read_only, mount.path_type
        )
    return sorted(by_name.values(), key=lambda v: v.name)


def _env(host: HostView, extra: Sequence[EnvVar], with_proxy: bool) -> list[EnvVar]:
    by_name: dict[str, EnvVar] = {}
    if with_proxy:
        for name in PROXY_ENV_NAMES:
            if host.proxy_env.get(name):
                by_name[name] = EnvVar(name=name, value=host.proxy_env[name])
    for var in extra:
        by_name[var.name] = var
    return [by_name[name] for name in sorted(by_name)]


def _probe_host(address: str | None, default: str) -> str:
    """kubeadm's rule: no address means loopback; a wildcard bind means no host, so the kubelet
    probes the pod IP (the host's, with hostNetwork)."""
    if not address:
        return default
    return "" if address in ("0.0.0.0", "::") else address


def probe_for(
    cfg: Config,
    component: str,
    flags: Sequence[F.Flag],
    *,
    host: str | None = None,
    port: int | None = None,
    loopback: str = "127.0.0.1",
) -> Probe:
    """The kubelet's probes of ``component``: its health endpoint (from the spec table and its
    flags; ``host`` and ``port`` fill in what the flags leave out), paths and timings."""
    spec = SPECS[component]
    flag_host, flag_port, scheme = spec.health_address(dict(flags))
    probes = spec.probes_for(minor_of(cfg.kubernetes_version))
    startup = replace(probes.startup.timings, failure=startup_failure_threshold(cfg))
    if flag_port is None:
        flag_port = port if port is not None else spec.port(spec.health.port).default
    return Probe(
        _probe_host(flag_host or host, loopback),
        flag_port,
        scheme.upper(),
        PROBE_PORT_NAME if Features.of(cfg.kubernetes_version).named_probe_port else None,
        probes.liveness,
        probes.readiness,
        replace(probes.startup, timings=startup),
    )


def image_for(cfg: Config, component: str) -> str:
    cluster = cfg.cluster
    if component == "etcd":
        local = cluster.etcd.local or LocalEtcd()
        repo = local.image_repository or cluster.image_repository
        return f"{repo}/etcd:{etcd_tag(cfg)}"
    return f"{cluster.image_repository}/{component}:{cfg.kubernetes_version}"


def etcd_tag(cfg: Config) -> str:
    local = cfg.cluster.etcd.local or LocalEtcd()
    return local.image_tag or Features.of(cfg.kubernetes_version).default_etcd_tag


def apiserver(cfg: Config, host: HostView) -> PodInputs:
    component = cfg.cluster.api_server
    flags = F.apiserver(cfg)
    advertise = F.flag_value(flags, "advertise-address") or cfg.advertise_address
    volumes = [*_ca_volumes(host), _volume("k8s-certs", cfg.cert_dir, "DirectoryOrCreate")]
    external = cfg.cluster.etcd.external
    if external is not None:
        mounted = [v.host_path for v in volumes]
        etcd_dirs = dict.fromkeys(
            posixpath.dirname(f) for f in (external.ca_file, external.cert_file, external.key_file) if f
        )
        extra_dirs = [d for d in etcd_dirs if not any(d == m or d.startswith(f"{m}/") for m in mounted)]
        volumes += [_volume(f"etcd-certs-{i}", d, "DirectoryOrCreate") for i, d in enumerate(extra_dirs)]
    return PodInputs(
        "kube-apiserver",
        image_for(cfg, "kube-apiserver"),
        flags,
        probe_for(cfg, "kube-apiserver", flags, host=cfg.advertise_address, port=cfg.bind_port),
        _with_extra(volumes, component.extra_volumes),
        _env(host, component.extra_envs, with_proxy=True),
        {"advertise_endpoint": f"{F.host_for_url(advertise)}:{cfg.bind_port}"},
    )


def controller_manager(cfg: Config, host: HostView) -> PodInputs:
    component = cfg.cluster.controller_manager
    flags = F.controller_manager(cfg, host.external_ca)
    flex = F.flag_value(flags, "flex-volume-plugin-dir") or FLEXVOLUME_DIR
    volumes = [
        *_ca_volumes(host),
        _volume("k8s-certs", cfg.cert_dir, "DirectoryOrCreate"),
        _volume("kubeconfig", SPECS["kube-controller-manager"].kubeconfig_file(), "FileOrCreate"),
        _volume("flexvolume-dir", flex, "DirectoryOrCreate", read_only=False),
    ]
    return PodInputs(
        "kube-controller-manager",
        image_for(cfg, "kube-controller-manager"),
        flags,
        probe_for(cfg, "kube-controller-manager", flags),
        _with_extra(volumes, component.extra_volumes),
        _env(host, component.extra_envs, with_proxy=True),
    )


def scheduler(cfg: Config, host: HostView) -> PodInputs:
    component = cfg.cluster.scheduler
    flags = F.scheduler(cfg)
    volumes = [_volume("kubeconfig", SPECS["kube-scheduler"].kubeconfig_file(), "FileOrCreate")]
    return PodInputs(
        "kube-scheduler",
        image_for(cfg, "kube-scheduler"),
        flags,
        probe_for(cfg, "kube-scheduler", flags),
        _with_extra(volumes, component.extra_volumes),
        _env(host, component.extra_envs, with_proxy=True),
    )


def etcd(cfg: Config, host: HostView, join: EtcdJoin | None = None) -> PodInputs:
    local = cfg.cluster.etcd.local or LocalEtcd()
    flags = F.etcd(cfg, etcd_tag(cfg), join.initial_cluster if join is not None else None)
    probe = probe_for(cfg, "etcd", flags, loopback=F.loopback_for(cfg.advertise_address))
    volumes = [
        _volume("etcd-data", local.data_dir, "DirectoryOrCreate", read_only=False),
        _volume("etcd-certs", f"{cfg.cert_dir}/etcd", "DirectoryOrCreate", read_only=False),
    ]
    return PodInputs(
        "etcd",
        image_for(cfg, "etcd"),
        flags,
        probe,
        volumes,
        _env(host, local.extra_envs, with_proxy=False),
        {"advertise_client_urls": F.flag_value(flags, "advertise-client-urls") or ""},
    )


BUILDERS: dict[str, Callable[[Config, HostView], PodInputs]] = {
    "etcd": etcd,
    "kube-apiserver": apiserver,
    "kube-controller-manager": controller_manager,
    "kube-scheduler": scheduler,
}


def startup_failure_threshold(cfg: Config) -> int:
    timeout = cfg.init.timeouts.control_plane_component_health_check.total_seconds()
    return max(1, math.ceil(timeout / STARTUP_TIMINGS.period))
