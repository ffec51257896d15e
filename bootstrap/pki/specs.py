"""The certificate table: one row per certificate kubeadm creates; adding a certificate is one row.

SAN computation follows kubeadm: DNS names end up de-duplicated and sorted, IP addresses
de-duplicated in insertion order.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bootstrap.config.hostport import split_host_port
from bootstrap.errors import PkiError
from bootstrap.pki.settings import PkiSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Extended key usages as dotted OIDs: this table stays importable without cryptography, which keeps
# the CLI's start-up (the phase tree is built from it) fast. issue.py turns them into OID objects.
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
EKU_NAMES = {SERVER_AUTH: "serverAuth", CLIENT_AUTH: "clientAuth"}

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_WILDCARD_DNS = re.compile(rf"\*\.{_DNS_LABEL}(\.{_DNS_LABEL})*")


@dataclass(frozen=True)
class AltNames:
    """Subject alternative names: DNS names sorted and unique, IPs unique in insertion order."""

    dns_names: tuple[str, ...] = ()
    ips: tuple[IPAddress, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def build(
        cls, dns_names: Iterable[str], ips: Iterable[IPAddress], warnings: Iterable[str] = ()
    ) -> AltNames:
        return cls(tuple(sorted(set(dns_names))), tuple(dict.fromkeys(ips)), tuple(warnings))

    def labels(self) -> list[str]:
        """``DNS:x`` / ``IP:y`` labels, as in openssl's and our error messages."""
        return [f"DNS:{d}" for d in self.dns_names] + [f"IP:{ip}" for ip in self.ips]


def _no_sans(settings: PkiSettings) -> AltNames:
    return AltNames()


def _self_dns(common_name: str) -> Callable[[PkiSettings], AltNames]:
    # kubeadm's self-signed CA template carries DNSNames = [CommonName].
    def sans(settings: PkiSettings) -> AltNames:
        return AltNames.build([common_name], [])

    return sans


def parse_ip(text: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise PkiError(f"{what}: {text!r} is not an IP address") from exc


def endpoint_host(endpoint: str) -> str:
    """The host part of ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    try:
        return split_host_port(endpoint)[0]
    except ValueError as exc:
        raise PkiError(f"controlPlaneEndpoint {endpoint!r}: {exc}") from None


def first_service_ip(service_subnet: str) -> IPAddress:
    """The apiserver's in-cluster service IP: first address of the (first, if dual-stack) service CIDR."""
    cidr = service_subnet.split(",")[0].strip()
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise PkiError(f"serviceSubnet {cidr!r} is not a CIDR") from exc
    return network.network_address + 1


def _append_extra(
    dns: list[str], ips: list[IPAddress], warnings: list[str], extra: Iterable[str], cert: str
) -> None:
    for san in extra:
        try:
            ips.append(ipaddress.ip_address(san))
            continue
        except ValueError:
            pass
        if _DNS1123_SUBDOMAIN.fullmatch(san) or _WILDCARD_DNS.fullmatch(san):
            dns.append(san)
        else:
            warnings.append(
                f"skipping {san!r} for {cert} certificate: it is neither an IP address nor a valid DNS name"
            )


def apiserver_sans(settings: PkiSettings) -> AltNames:
    """kubeadm's apiserver SANs: node name, kubernetes.default.svc names, service IP, advertise address,
    controlPlaneEndpoint host and apiServer.certSANs."""
    dns = [
        settings.node_name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{settings.dns_domain}",
    ]
    ips = [
        first_service_ip(settings.service_subnet),
        parse_ip(settings.advertise_address, "advertiseAddress"),
    ]
    warnings: list[str] = []
    if settings.control_plane_endpoint:
        host = endpoint_host(settings.control_plane_endpoint)
        try:
            ips.append(ipaddress.ip_address(host))
        except ValueError:
            dns.append(host)
    _append_extra(dns, ips, warnings, settings.apiserver_cert_sans, "apiserver")
    return AltNames.build(dns, ips, warnings)


def _etcd_sans(settings: PkiSettings, extra: Iterable[str], cert: str) -> AltNames:
    dns = [settings.node_name, "localhost"]
    ips: list[IPAddress] = [
        parse_ip(settings.advertise_address, "advertiseAddress"),
        ipaddress.IPv4Address("127.0.0.1"),
        ipaddress.IPv6Address("::1"),
    ]
    warnings: list[str] = []
    _append_extra(dns, ips, warnings, extra, cert)
    return AltNames.build(dns, ips, warnings)


def etcd_server_sans(settings: PkiSettings) -> AltNames:
    return _etcd_sans(settings, settings.etcd_server_cert_sans, "etcd/server")


def etcd_peer_sans(settings: PkiSettings) -> AltNames:
    return _etcd_sans(settings, settings.etcd_peer_cert_sans, "etcd/peer")


def _node_name(settings: PkiSettings) -> str:
    return settings.node_name


@dataclass(frozen=True)
class CertSpec:
    """One certificate of the table.

    ``base`` is the path relative to the pki dir without extension (``etcd/server``); ``ca`` is the
    name of the signing CA's spec, None for a self-signed CA. ``common_name`` is a string or a
    function of the settings (etcd server/peer use the node name).
    """

    name: str
    base: str
    common_name: str | Callable[[PkiSettings], str]
    ca: str | None
    organizations: tuple[str, ...] = ()
    usages: tuple[str, ...] = ()  # dotted OIDs
    sans: Callable[[PkiSettings], AltNames] = field(default=_no_sans)
    etcd: bool = False  # skipped in external etcd mode

    @property
    def is_ca(self) -> bool:
        return self.ca is None

    @property
    def cert_file(self) -> str:
        return f"{self.base}.crt"

    @property
    def key_file(self) -> str:
        return f"{self.base}.key"

    def cn(self, settings: PkiSettings) -> str:
        return self.common_name if isinstance(self.common_name, str) else self.common_name(settings)


def _ca(name: str, base: str, cn: str, etcd: bool = False) -> CertSpec:
    return CertSpec(name, base, cn, None, sans=_self_dns(cn), etcd=etcd)


# Phase order, as kubeadm prints the certs sub-phases.
_TABLE: tuple[CertSpec, ...] = (
    _ca("ca", "ca", "kubernetes"),
    CertSpec("apiserver", "apiserver", "kube-apiserver", "ca", usages=(SERVER_AUTH,), sans=apiserver_sans),
    CertSpec(
        "apiserver-kubelet-client",
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        "ca",
        organizations=("kubeadm:cluster-admins",),
        usages=(CLIENT_AUTH,),
    ),
    _ca("front-proxy-ca", "front-proxy-ca", "front-proxy-ca"),
    CertSpec(
        "front-proxy-client",
        "front-proxy-client",
        "front-proxy-client",
        "front-proxy-ca",
        usages=(CLIENT_AUTH,),
    ),
    _ca("etcd-ca", "etcd/ca", "etcd-ca", etcd=True),
    CertSpec(
        "etcd-server",
        "etcd/server",
        _node_name,
        "etcd-ca",
        usages=(SERVER_AUTH, CLIENT_AUTH),
        sans=etcd_server_sans,
        etcd=True,
    ),
    CertSpec(
        "etcd-peer",
        "etcd/peer",
        _node_name,
        "etcd-ca",
        usages=(SERVER_AUTH, CLIENT_AUTH),
        sans=etcd_peer_sans,
        etcd=True,
    ),
    CertSpec(
        "etcd-healthcheck-client",
        "etcd/healthcheck-client",
        "kube-etcd-healthcheck-client",
        "etcd-ca",
        usages=(CLIENT_AUTH,),
        etcd=True,
    ),
    CertSpec(
        "apiserver-etcd-client",
        "apiserver-etcd-client",
        "kube-apiserver-etcd-client",
        "etcd-ca",
        usages=(CLIENT_AUTH,),
        etcd=True,
    ),
)

CERT_NAMES: tuple[str, ...] = tuple(spec.name for spec in _TABLE)
CERT_SPECS: Mapping[str, CertSpec] = MappingProxyType({spec.name: spec for spec in _TABLE})
CA_NAMES: tuple[str, ...] = tuple(spec.name for spec in _TABLE if spec.is_ca)
LEAF_NAMES: tuple[str, ...] = tuple(spec.name for spec in _TABLE if not spec.is_ca)


def get_spec(name: str) -> CertSpec:
    """The spec called ``name``; an unknown name is an error listing the valid ones."""
    try:
        return CERT_SPECS[name]
    except KeyError:
        raise PkiError(f"unknown certificate {name!r}; valid: {', '.join(CERT_NAMES)}") from None
