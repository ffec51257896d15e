"""The command-line flags of each control-plane component, as kubeadm computes them.

Flags are ``(name, value)`` pairs. ``extraArgs`` replace every default instance of a name they
give (v1beta4 allows repeats) and the result is sorted by name, then value, and rendered as
``--name=value``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bootstrap.components.spec import CONTROLLER_MANAGER, ETCD, SCHEDULER
from bootstrap.components.versions import etcd_version_of

if TYPE_CHECKING:  # the helpers here are used at start-up (preflight, health); pydantic is not
    from bootstrap.config import Config
    from bootstrap.config.model import Arg

Flag = tuple[str, str]


def is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


def wildcard_for(address: str) -> str:
    """The any-address of ``address``'s family: where a server binds to listen on every interface."""
    return "::" if is_ipv6(address) else "0.0.0.0"


def host_for_url(address: str) -> str:
    return f"[{address}]" if is_ipv6(address) else address


def merge(defaults: Sequence[Flag], extra: Sequence[Arg]) -> list[Flag]:
    """Defaults with every name given in ``extra`` replaced by the extra values; sorted."""
    overridden = {arg.name for arg in extra}
    merged = [flag for flag in defaults if flag[0] not in overridden]
    merged += [(arg.name, arg.value) for arg in extra]
    return sorted(merged)


def command(binary: str, flags: Sequence[Flag]) -> list[str]:
    return [binary, *(f"--{name}={value}" for name, value in flags)]


def flag_value(flags: Sequence[Flag], name: str) -> str | None:
    """The last value of ``name`` (what the component's flag parser keeps)."""
    values = [value for key, value in flags if key == name]
    return values[-1] if values else None


def loopback_for(address: str) -> str:
    return "::1" if is_ipv6(address) else "127.0.0.1"


def _etcd_port(role: str) -> int:
    return ETCD.port(role).default


def etcd_client_url(cfg: Config) -> str:
    return f"https://{host_for_url(loopback_for(cfg.advertise_address))}:{_etcd_port('client')}"


def apiserver(cfg: Config) -> list[Flag]:
    cluster = cfg.cluster
    pki = cfg.cert_dir
    extra = cluster.api_server.extra_args
    flags: list[Flag] = [
        ("advertise-address", cfg.advertise_address),
        ("allow-privileged", "true"),
        ("client-ca-file", f"{pki}/ca.crt"),
        ("enable-admission-plugins", "NodeRestriction"),
        ("enable-bootstrap-token-auth", "true"),
        ("kubelet-client-certificate", f"{pki}/apiserver-kubelet-client.crt"),
        ("kubelet-client-key", f"{pki}/apiserver-kubelet-client.key"),
        ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"),
        ("proxy-client-cert-file", f"{pki}/front-proxy-client.crt"),
        ("proxy-client-key-file", f"{pki}/front-proxy-client.key"),
        ("requestheader-allowed-names", "front-proxy-client"),
        ("requestheader-client-ca-file", f"{pki}/front-proxy-ca.crt"),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-username-headers", "X-Remote-User"),
        ("secure-port", str(cfg.bind_port)),
        ("service-account-issuer", f"https://kubernetes.default.svc.{cluster.networking.dns_domain}"),
        ("service-account-key-file", f"{pki}/sa.pub"),
        ("service-account-signing-key-file", f"{pki}/sa.key"),
        ("service-cluster-ip-range", cluster.networking.service_subnet),
        ("tls-cert-file", f"{pki}/apiserver.crt"),
        ("tls-private-key-file", f"{pki}/apiserver.key"),
    ]
    if not any(arg.name == "authorization-config" for arg in extra):
        # A user's authorization-mode replaces this default verbatim, as in kubeadm.
        flags.append(("authorization-mode", "Node,RBAC"))
    external = cluster.etcd.external
    if external is not None:
        flags.append(("etcd-servers", ",".join(external.endpoints)))
        for name, value in (
            ("etcd-cafile", external.ca_file),
            ("etcd-certfile", external.cert_file),
            ("etcd-keyfile", external.key_file),
        ):
            if value:
                flags.append((name, value))
    else:
        local_args = cluster.etcd.local.extra_args if cluster.etcd.local else []
        advertised = [a.value for a in local_args if a.name == "advertise-client-urls"]
        flags += [
            ("etcd-cafile", f"{pki}/etcd/ca.crt"),
            ("etcd-certfile", f"{pki}/apiserver-etcd-client.crt"),
            ("etcd-keyfile", f"{pki}/apiserver-etcd-client.key"),
            ("etcd-servers", advertised[-1] if advertised else etcd_client_url(cfg)),
        ]
    return merge(flags, extra)


def controller_manager(cfg: Config, external_ca: bool) -> list[Flag]:
    cluster = cfg.cluster
    pki = cfg.cert_dir
    kubeconfig = CONTROLLER_MANAGER.kubeconfig_file()
    flags: list[Flag] = [
        ("authentication-kubeconfig", kubeconfig),
        ("authorization-kubeconfig", kubeconfig),
        ("bind-address", "127.0.0.1"),
        ("client-ca-file", f"{pki}/ca.crt"),
        ("cluster-name", cluster.cluster_name),
        ("cluster-signing-cert-file", "" if external_ca else f"{pki}/ca.crt"),
        ("cluster-signing-key-file", "" if external_ca else f"{pki}/ca.key"),
        ("controllers", "*,bootstrapsigner,tokencleaner"),
        ("kubeconfig", kubeconfig),
        ("leader-elect", "true"),
        ("requestheader-client-ca-file", f"{pki}/front-proxy-ca.crt"),
        ("root-ca-file", f"{pki}/ca.crt"),
        ("service-account-private-key-file", f"{pki}/sa.key"),
        ("use-service-account-credentials", "true"),
    ]
    if cluster.networking.pod_subnet:
        flags += [
            ("allocate-node-cidrs", "true"),
            ("cluster-cidr", cluster.networking.pod_subnet),
            ("service-cluster-ip-range", cluster.networking.service_subnet),
        ]
    return merge(flags, cluster.controller_manager.extra_args)


def scheduler(cfg: Config) -> list[Flag]:
    kubeconfig = SCHEDULER.kubeconfig_file()
    flags: list[Flag] = [
        ("authentication-kubeconfig", kubeconfig),
        ("authorization-kubeconfig", kubeconfig),
        ("bind-address", "127.0.0.1"),
        ("kubeconfig", kubeconfig),
        ("leader-elect", "true"),
    ]
    return merge(flags, cfg.cluster.scheduler.extra_args)


def etcd(cfg: Config, image_tag: str, initial_cluster: str | None = None) -> list[Flag]:
    """etcd's flags; ``initial_cluster`` is given for a member joining an existing cluster (the member
    list it was added into), else the node starts a new cluster of itself."""
    local = cfg.cluster.etcd.local
    assert local is not None, "etcd flags need local etcd"
    pki = f"{cfg.cert_dir}/etcd"
    adv = host_for_url(cfg.advertise_address)
    loopback = host_for_url(loopback_for(cfg.advertise_address))
    client, peer, metrics = _etcd_port("client"), _etcd_port("peer"), _etcd_port("metrics")
    flags: list[Flag] = [
        ("advertise-client-urls", f"https://{adv}:{client}"),
        ("cert-file", f"{pki}/server.crt"),
        ("client-cert-auth", "true"),
        ("data-dir", local.data_dir),
        ("initial-advertise-peer-urls", f"https://{adv}:{peer}"),
        ("initial-cluster", initial_cluster or f"{cfg.node_name}=https://{adv}:{peer}"),
        ("key-file", f"{pki}/server.key"),
        ("listen-client-urls", f"https://{loopback}:{client},https://{adv}:{client}"),
        ("listen-metrics-urls", f"http://{loopback}:{metrics}"),
        ("listen-peer-urls", f"https://{adv}:{peer}"),
        ("name", cfg.node_name),
        ("peer-cert-file", f"{pki}/peer.crt"),
        ("peer-client-cert-auth", "true"),
        ("peer-key-file", f"{pki}/peer.key"),
        ("peer-trusted-ca-file", f"{pki}/ca.crt"),
        ("snapshot-count", "10000"),
        ("trusted-ca-file", f"{pki}/ca.crt"),
    ]
    if initial_cluster is not None:
        flags.append(("initial-cluster-state", "existing"))
    if etcd_version_of(image_tag) >= (3, 6):
        flags += [("feature-gates", "InitialCorruptCheck=true"), ("watch-progress-notify-interval", "5s")]
    else:
        flags += [
            ("experimental-initial-corrupt-check", "true"),
            ("experimental-watch-progress-notify-interval", "5s"),
        ]
    return merge(flags, local.extra_args)
