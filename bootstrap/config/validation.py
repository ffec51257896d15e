"""Semantic validation of a fully defaulted InitConfiguration + ClusterConfiguration.

Implements the kubeadm v1beta4 rules that apply to these kinds (reference §7.3) plus a check kubeadm
lacks: serviceSubnet and podSubnet must not overlap. Every problem is a ``(field.path, message)``
pair, the message quoting the bad value; nothing stops at the first problem. Warnings (things kubeadm
also only warns about) are returned separately.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from bootstrap.config.hostport import is_ip, parse_port, split_host_port
from bootstrap.config.keyalgorithms import ENCRYPTION_ALGORITHMS
from bootstrap.config.kubeversion import major_minor
from bootstrap.config.model import (
    SUPPORTED_MINORS,
    Arg,
    ClusterConfiguration,
    EnvVar,
    HostPathMount,
    InitConfiguration,
    NodeRegistrationOptions,
    Timeouts,
    aliases,
)
from bootstrap.config.tokens import TOKEN_GROUP_RE, TOKEN_RE

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_WILDCARD_SUBDOMAIN = re.compile(rf"^\*\.{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_VERSION = re.compile(r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)(-[0-9A-Za-z.-]+)?$")
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
_IMAGE_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REPO_HOST = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:]+\])"
_REPO_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REPOSITORY = re.compile(rf"^{_REPO_HOST}(?::[0-9]+)?(?:/{_REPO_PATH})*$")

KNOWN_FEATURE_GATES = frozenset(
    {
        "ControlPlaneKubeletLocalMode",
        "EtcdLearnerMode",
        "NodeLocalCRISocket",
        "PublicKeysECDSA",
        "RootlessControlPlane",
        "WaitForAllControlPlaneComponents",
    }
)
TOKEN_USAGES = frozenset({"signing", "authentication"})
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
HOST_PATH_TYPES = (
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)

MIN_SERVICE_ADDRESSES = 10
MIN_POD_ADDRESSES = 14
MAX_SERVICE_HOST_BITS = 20
DEFAULT_NODE_MASK = {4: 24, 6: 64}
MAX_NODE_MINUS_POD_MASK = 16


MAX_NODE_NAME = 64 - len("system:node:")
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
# A directory we write files beneath leaves room for one more component (our file or temp name).
MAX_WRITE_DIR_BYTES = MAX_PATH_BYTES - MAX_NAME_BYTES - 1
MAX_TIMEOUT = timedelta(hours=8760)
_SHOWN_CHARS = 100
# Characters that end a line on a terminal or in str.splitlines(), beyond the ASCII controls.
_LINE_BREAKS = frozenset("\x85\u2028\u2029")


def one_line(text: str) -> str:
    """``text`` with every control or line-breaking character escaped, so a message stays one line."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or char == " ":
            out.append(char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


def q(value: object) -> str:
    """Quote a bad value for a message: strings in double quotes (escaped, shortened), others as text."""
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 3] + "..."
        return one_line(json.dumps(shown, ensure_ascii=False))
    return one_line(str(value))


def has_control(text: str) -> bool:
    """True when ``text`` holds a control or line-breaking character (never valid in a name or path)."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in _LINE_BREAKS for c in text)


@dataclass
class Report:
    """Problems (``(path, message)``) and warnings found by :func:`validate`."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")


# ---- small predicates, public because other modules (certs, SANs) need the same rules ----
def is_dns1123_subdomain(text: str) -> bool:
    """True for an RFC 1123 subdomain (lower case, at most 253 characters)."""
    return len(text) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(text) is not None


def is_certificate_key(text: str) -> bool:
    """True for a hex-encoded 32-byte key (what upload-certs encrypts with)."""
    return _HEX_KEY.fullmatch(text) is not None


def is_valid_san(text: str) -> bool:
    """True for an IP, a DNS-1123 subdomain or a wildcard DNS subdomain (``*.example.com``)."""
    return (
        is_ip(text)
        or is_dns1123_subdomain(text)
        or (len(text) <= 253 and _WILDCARD_SUBDOMAIN.fullmatch(text) is not None)
    )


def host_port_problem(endpoint: str, *, port_required: bool = False) -> str | None:
    """Why ``endpoint`` is not a usable ``host[:port]`` (host: IP or DNS-1123 subdomain), or None."""
    try:
        host, port = split_host_port(endpoint)
    except ValueError as exc:
        return f"{q(endpoint)} is not host[:port] ({exc})"
    if not (is_ip(host) or is_dns1123_subdomain(host)):
        return f"{q(endpoint)}: host {q(host)} is neither an IP address nor a DNS-1123 subdomain"
    if port is None and port_required:
        return f"{q(endpoint)} has no port"
    if port is not None and parse_port(port) is None:
        return f"{q(endpoint)}: port {q(port)} is not a valid port (1-65535)"
    return None


def url_problem(url: str, schemes: Sequence[str]) -> str | None:
    """Why ``url`` is not a ``scheme://host[:port][/path]`` URL with one of ``schemes``, or None."""
    example = f"e.g. {schemes[0]}://10.0.0.5:2379"
    if has_control(url) or url != url.strip() or " " in url:
        return f"{q(url)} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"{q(url)} is not a URL ({exc})"
    if parts.scheme not in schemes or not parts.netloc:
        return f"{q(url)} is not a URL with a scheme ({', '.join(schemes)}) and a host ({example})"
    if "@" in parts.netloc:
        return f"{q(url)} must not carry user information"
    if parts.query or parts.fragment:
        return f"{q(url)} must not have a query or fragment"
    problem = host_port_problem(parts.netloc)
    return f"{q(url)}: {problem}" if problem else None


def path_problem(value: str, *, max_bytes: int = MAX_PATH_BYTES) -> str | None:
    """Why ``value`` cannot be an absolute host path (relative, NUL/control characters, too long), or None."""
    if not value.startswith("/"):
        return f"{q(value)} is not an absolute path"
    if has_control(value):
        return f"{q(value)} contains a NUL or control character"
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > max_bytes:
        return f"{q(value)} is longer than {max_bytes} bytes"
    for part in encoded.split(b"/"):
        if len(part) > MAX_NAME_BYTES:
            return f"{q(value)} has a component longer than {MAX_NAME_BYTES} bytes"
    return None


def path_within(path: str, directory: str) -> bool:
    """True when ``path`` is ``directory`` or below it (lexically, after normalising)."""
    path, directory = posixpath.normpath(path), posixpath.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def parse_cidrs(value: str) -> list[IPNetwork]:
    """Parse a comma-separated CIDR list; host bits may be set (as Go's ``net.ParseCIDR`` allows)."""
    nets: list[IPNetwork] = []
    for part in value.split(","):
        if part != part.strip() or has_control(part) or not part.isascii():
            # Go's net.ParseCIDR (and so kubeadm) refuses surrounding spaces and newlines.
            raise ValueError(f"{q(part)} is not a CIDR (whitespace or non-ASCII characters)")
        if "/" not in part:
            raise ValueError(f"{q(part)} is not a CIDR (expected address/prefix, e.g. 10.96.0.0/12)")
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{q(part)} is not a valid CIDR") from None
    return nets


def normalise_version(text: str) -> str | None:
    """``vX.Y.Z`` for ``vX.Y.Z`` / ``X.Y.Z`` (with optional pre-release), else None."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    return f"v{int(major)}.{int(minor)}.{int(patch)}{pre or ''}"


# ---- KubeletConfiguration fields kube-bootstrap reads back (the document is otherwise kept verbatim) ----
def validate_kubelet(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with the kubelet settings that preflight, kubelet-start and the wait read back."""
    problems: list[tuple[str, str]] = []

    def error(key: str, message: str) -> None:
        problems.append((f"KubeletConfiguration.{key}", message))

    for key, lowest in (("port", 1), ("healthzPort", 0)):
        value = doc.get(key)
        if key in doc and (
            not isinstance(value, int) or isinstance(value, bool) or not lowest <= value <= 65535
        ):
            error(key, f"{q(value)} is not a port ({lowest}-65535)")
    for key in ("address", "healthzBindAddress"):
        value = doc.get(key)
        if key in doc and not (isinstance(value, str) and is_ip(value)):
            error(key, f"{q(value)} is not an IP address")
    if "staticPodPath" in doc:
        value = doc["staticPodPath"]
        problem = path_problem(value, max_bytes=MAX_WRITE_DIR_BYTES) if isinstance(value, str) else None
        if not isinstance(value, str) or problem:
            error("staticPodPath", problem or f"expected a path, got {q(value)}")
    for key in ("failSwapOn", "rotateCertificates"):
        if key in doc and not isinstance(doc[key], bool):
            error(key, f"expected true or false, got {q(doc[key])}")
    return problems


# ---- the rules ----
def validate(init: InitConfiguration, cluster: ClusterConfiguration) -> Report:
    """Check every rule; return all problems and warnings found."""
    report = Report()
    _validate_init(init, report)
    _validate_cluster(cluster, report)
    return report


def _validate_init(init: InitConfiguration, r: Report) -> None:
    ep = init.local_api_endpoint
    if not is_ip(ep.advertise_address):
        r.error("localAPIEndpoint.advertiseAddress", f"{q(ep.advertise_address)} is not a valid IP address")
    if not 1 <= ep.bind_port <= 65535:
        r.error("localAPIEndpoint.bindPort", f"{ep.bind_port} is not a valid port (1-65535)")

    validate_node_registration(init.node_registration, r)

    for i, token in enumerate(init.bootstrap_tokens):
        path = f"bootstrapTokens[{i}]"
        if token.token is not None and not TOKEN_RE.fullmatch(token.token):
            # The value is a credential (a typo of a real token still is one): never echo its secret half.
            shown = q(token.token.split(".", 1)[0] + ".<redacted>") if "." in token.token else "the value"
            r.error(f"{path}.token", f"{shown} does not match [a-z0-9]{{6}}.[a-z0-9]{{16}}")
        if token.ttl is not None and token.expires is not None:
            r.error(path, "ttl and expires are mutually exclusive")
        if token.ttl is not None and token.ttl < timedelta(0):
            r.error(f"{path}.ttl", "must not be negative")
        for j, usage in enumerate(token.usages):
            if usage not in TOKEN_USAGES:
                r.error(f"{path}.usages[{j}]", f"{q(usage)} is not one of {', '.join(sorted(TOKEN_USAGES))}")
        for j, group in enumerate(token.groups):
            if not TOKEN_GROUP_RE.fullmatch(group):
                r.error(f"{path}.groups[{j}]", f"{q(group)} must match {TOKEN_GROUP_RE.pattern}")

    if init.certificate_key and not _HEX_KEY.fullmatch(init.certificate_key):
        r.error("certificateKey", "must be a hex-encoded 32-byte key (64 hex characters)")

    validate_timeouts(init.timeouts, r)


def validate_timeouts(timeouts: Timeouts, r: Report) -> None:
    """Every ``timeouts.*`` is positive and at most a year (shared by init and join)."""
    for name, alias in aliases(Timeouts).items():
        value: timedelta = getattr(timeouts, name)
        if value <= timedelta(0):
            r.error(f"timeouts.{alias}", "must be a positive duration")
        elif value > MAX_TIMEOUT:
            r.error(f"timeouts.{alias}", "must be at most 8760h (one year)")


def validate_node_registration(nr: NodeRegistrationOptions, r: Report) -> None:
    """The ``nodeRegistration`` rules, shared by init and join (the name is already defaulted)."""
    if not nr.name:
        r.error("nodeRegistration.name", "is required")
    elif not is_dns1123_subdomain(nr.name):
        r.error(
            "nodeRegistration.name",
            f"{q(nr.name)} is not a valid DNS-1123 subdomain (lower-case letters, digits, '-' and '.')",
        )
    elif len(nr.name) > MAX_NODE_NAME:
        # The kubelet's client certificate must carry CN=system:node:<name> in full for the Node
        # authorizer, and X.509 caps a CN at 64 characters: a longer name cannot get a credential.
        r.error(
            "nodeRegistration.name",
            f"{q(nr.name)} is {len(nr.name)} characters; at most {MAX_NODE_NAME} fit the kubelet "
            "certificate's common name system:node:<name> (64 characters)",
        )
    _validate_cri_socket(nr.cri_socket, r)
    for i, arg in enumerate(nr.kubelet_extra_args):
        # These land in kubeadm-flags.env, a systemd EnvironmentFile line in double quotes.
        for part, text in (("name", arg.name), ("value", arg.value)):
            if has_control(text) or '"' in text or "\\" in text:
                r.error(
                    f"nodeRegistration.kubeletExtraArgs[{i}].{part}",
                    f"{q(text)} contains a control character, a double quote or a backslash",
                )
    if nr.image_pull_policy not in PULL_POLICIES:
        r.error(
            "nodeRegistration.imagePullPolicy",
            f"{q(nr.image_pull_policy)} is not one of {', '.join(PULL_POLICIES)}",
        )
    for i, taint in enumerate(nr.taints or []):
        if not taint.key:
            r.error(f"nodeRegistration.taints[{i}].key", "is required")
        if taint.effect not in TAINT_EFFECTS:
            r.error(
                f"nodeRegistration.taints[{i}].effect",
                f"{q(taint.effect)} is not one of {', '.join(TAINT_EFFECTS)}",
            )
    _validate_args(nr.kubelet_extra_args, "nodeRegistration.kubeletExtraArgs", r)
    lowered = [e.lower() for e in nr.ignore_preflight_errors]
    if "all" in lowered and len(set(lowered)) > 1:
        r.error(
            "nodeRegistration.ignorePreflightErrors",
            "'all' cannot be combined with specific check names",
        )


def _validate_cri_socket(socket_url: str, r: Report) -> None:
    if not socket_url.startswith("unix://"):
        r.error(
            "nodeRegistration.criSocket",
            f"{q(socket_url)} is not a unix:// URL (e.g. unix:///var/run/containerd/containerd.sock)",
        )
        return
    problem = path_problem(socket_url.removeprefix("unix://"))
    if problem is None and ('"' in socket_url or "\\" in socket_url or " " in socket_url):
        problem = f"{q(socket_url)} contains a space, a double quote or a backslash"
    if problem is not None:
        r.error("nodeRegistration.criSocket", problem)


def _validate_cluster(c: ClusterConfiguration, r: Report) -> None:
    _validate_version(c.kubernetes_version, r)
    if not c.cluster_name:
        r.error("clusterName", "must not be empty")
    elif has_control(c.cluster_name) or c.cluster_name != c.cluster_name.strip():
        r.error("clusterName", f"{q(c.cluster_name)} has surrounding whitespace or control characters")
    if c.control_plane_endpoint:
        problem = host_port_problem(c.control_plane_endpoint)
        if problem:
            r.error("controlPlaneEndpoint", problem)
    _validate_networking(c, r)
    _validate_abs("certificatesDir", c.certificates_dir, r, max_bytes=MAX_WRITE_DIR_BYTES)
    _validate_image_repository("imageRepository", c.image_repository, r, required=True)
    if c.encryption_algorithm not in ENCRYPTION_ALGORITHMS:
        r.error(
            "encryptionAlgorithm",
            f"{q(c.encryption_algorithm)} is not one of {', '.join(ENCRYPTION_ALGORITHMS)}",
        )
    if c.certificate_validity_period <= timedelta(0):
        r.error("certificateValidityPeriod", "must be a positive duration")
    if c.ca_certificate_validity_period <= timedelta(0):
        r.error("caCertificateValidityPeriod", "must be a positive duration")
    if c.certificate_validity_period > c.ca_certificate_validity_period:
        r.warn(
            "certificateValidityPeriod",
            "is longer than caCertificateValidityPeriod; certificates will outlive their CA",
        )
    for name in c.feature_gates or {}:
        if name not in KNOWN_FEATURE_GATES:
            r.error(f"featureGates.{name}", f"{q(name)} is not a known feature gate")
    if c.dns is not None:
        _validate_image_repository("dns.imageRepository", c.dns.image_repository, r, required=False)
        _validate_image_tag("dns.imageTag", c.dns.image_tag, r)

    _validate_sans("apiServer.certSANs", c.api_server.cert_sans, r)
    for comp_name, comp in (
        ("apiServer", c.api_server),
        ("controllerManager", c.controller_manager),
        ("scheduler", c.scheduler),
    ):
        _validate_args(comp.extra_args, f"{comp_name}.extraArgs", r, _READ_BACK[comp_name])
        _validate_volumes(comp.extra_volumes, f"{comp_name}.extraVolumes", r)
        _validate_envs(comp.extra_envs, f"{comp_name}.extraEnvs", r)
    _validate_etcd(c, r)


def _validate_version(version: str, r: Report) -> None:
    normal = normalise_version(version)
    if normal is None:
        r.error("kubernetesVersion", f"{q(version)} is not a version (expected vX.Y.Z)")
        return
    major, minor = major_minor(normal)
    if major != 1 or minor not in SUPPORTED_MINORS:
        first, last = SUPPORTED_MINORS[0], SUPPORTED_MINORS[-1]
        r.error("kubernetesVersion", f"{q(version)} is not supported (supported: v1.{first} to v1.{last})")


def _validate_subnets(
    path: str, value: str, min_addresses: int, r: Report
) -> list[tuple[str, IPNetwork]] | None:
    """Parse and check one subnet field; return ``(as written, network)`` pairs, or None if unusable."""
    try:
        nets = parse_cidrs(value)
    except ValueError as exc:
        r.error(path, str(exc))
        return None
    if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
        r.error(
            path,
            f"{q(value)}: expected one CIDR (IPv4 or IPv6) or two, one of each family, for dual-stack",
        )
        return None
    ok = True
    raw = [part.strip() for part in value.split(",")]
    for text, net in zip(raw, nets, strict=True):
        if net.num_addresses < min_addresses:
            r.error(path, f"{q(text)} is too small (at least {min_addresses} addresses are needed)")
            ok = False
        if net.version == 6 and net.subnet_of(ipaddress.IPv6Network("fec0::/10")):
            r.warn(path, f"{q(text)} is in the deprecated IPv6 site-local range fec0::/10")
    return list(zip(raw, nets, strict=True)) if ok else None


def _validate_networking(c: ClusterConfiguration, r: Report) -> None:
    n = c.networking
    if not is_dns1123_subdomain(n.dns_domain):
        r.error("networking.dnsDomain", f"{q(n.dns_domain)} is not a valid DNS-1123 subdomain")

    services = _validate_subnets("networking.serviceSubnet", n.service_subnet, MIN_SERVICE_ADDRESSES, r)
    for text, net in services or []:
        if net.max_prefixlen - net.prefixlen > MAX_SERVICE_HOST_BITS:
            limit = f"/{net.max_prefixlen - MAX_SERVICE_HOST_BITS} for IPv{net.version}"
            r.error(
                "networking.serviceSubnet",
                f"{q(text)} is too large (at most {limit})",
            )

    if not n.pod_subnet:
        return
    pods = _validate_subnets("networking.podSubnet", n.pod_subnet, MIN_POD_ADDRESSES, r)
    if pods is None:
        return
    kcm_args = {a.name: a.value for a in c.controller_manager.extra_args}
    if kcm_args.get("allocate-node-cidrs", "true").lower() != "false":
        for text, net in pods:
            node_mask = _node_mask(kcm_args, net.version, len(pods) == 2)
            if node_mask is None:
                r.error("controllerManager.extraArgs", "node-cidr-mask-size value is not an integer")
                continue
            if net.prefixlen > node_mask:
                r.error(
                    "networking.podSubnet",
                    f"{q(text)} is smaller than the per-node CIDR size /{node_mask}",
                )
            elif node_mask - net.prefixlen > MAX_NODE_MINUS_POD_MASK:
                r.error(
                    "networking.podSubnet",
                    f"{q(text)} is too large for per-node /{node_mask} CIDRs "
                    f"(the node mask may be at most {MAX_NODE_MINUS_POD_MASK} bits longer)",
                )
    for svc_text, svc in services or []:
        for pod_text, pod in pods:
            if svc.version == pod.version and svc.overlaps(pod):
                r.error(
                    "networking.podSubnet",
                    f"{q(pod_text)} overlaps networking.serviceSubnet {q(svc_text)}",
                )


def _node_mask(kcm_args: dict[str, str], family: int, dual: bool) -> int | None:
    keys = [f"node-cidr-mask-size-ipv{family}"]
    if not dual:
        keys.append("node-cidr-mask-size")
    for key in keys:
        if key in kcm_args:
            text = kcm_args[key]
            return int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else None
    return DEFAULT_NODE_MASK[family]


def _validate_abs(path: str, value: str, r: Report, *, max_bytes: int = MAX_PATH_BYTES) -> None:
    problem = path_problem(value, max_bytes=max_bytes)
    if problem:
        r.error(path, problem)


def _validate_image_repository(path: str, value: str, r: Report, *, required: bool) -> None:
    if not value and not required:
        return
    if not _IMAGE_REPOSITORY.fullmatch(value):
        r.error(path, f"{q(value)} is not a valid image repository (e.g. registry.k8s.io or host:5000/path)")


def _validate_image_tag(path: str, value: str, r: Report) -> None:
    if value and not _IMAGE_TAG.fullmatch(value):
        r.error(path, f"{q(value)} is not a valid image tag")


def _validate_sans(path: str, sans: Sequence[str], r: Report) -> None:
    for i, san in enumerate(sans):
        if not is_valid_san(san):
            r.error(
                f"{path}[{i}]",
                f"{q(san)} is neither an IP address, a DNS-1123 subdomain nor a wildcard DNS name",
            )


# Flags whose values kube-bootstrap reads back (probes, preflight binds, data paths): their kind.
_READ_BACK: dict[str, dict[str, str]] = {
    "apiServer": {"secure-port": "port", "bind-address": "ip", "advertise-address": "ip"},
    "controllerManager": {"secure-port": "port", "bind-address": "ip", "flex-volume-plugin-dir": "path"},
    "scheduler": {"secure-port": "port", "bind-address": "ip"},
    "etcd.local": {
        "data-dir": "path",
        "listen-client-urls": "urls",
        "listen-peer-urls": "urls",
        "listen-metrics-urls": "urls",
        "advertise-client-urls": "urls",
        "initial-advertise-peer-urls": "urls",
    },
}


def _arg_problem(kind: str, value: str) -> str | None:
    if kind == "port":
        return None if parse_port(value) is not None else f"{q(value)} is not a valid port (1-65535)"
    if kind == "ip":
        return None if is_ip(value) else f"{q(value)} is not a valid IP address"
    if kind == "path":
        return path_problem(value)
    for url in value.split(","):
        problem = url_problem(url, ("https", "http"))
        if problem is None and urlsplit(url).port is None:
            problem = f"{q(url)} has no port"
        if problem:
            return problem
    return None


def _validate_args(
    args: Sequence[Arg], path: str, r: Report, read_back: dict[str, str] | None = None
) -> None:
    for i, arg in enumerate(args):
        if not arg.name:
            r.error(f"{path}[{i}].name", "must not be empty")
        kind = (read_back or {}).get(arg.name)
        problem = _arg_problem(kind, arg.value) if kind else None
        if problem:
            r.error(f"{path}[{i}].value", f"--{arg.name}: {problem}")


def _validate_volumes(volumes: Sequence[HostPathMount], path: str, r: Report) -> None:
    for i, vol in enumerate(volumes):
        if not vol.name:
            r.error(f"{path}[{i}].name", "must not be empty")
        _validate_abs(f"{path}[{i}].hostPath", vol.host_path, r)
        _validate_abs(f"{path}[{i}].mountPath", vol.mount_path, r)
        if vol.path_type not in HOST_PATH_TYPES:
            r.error(
                f"{path}[{i}].pathType",
                f"{q(vol.path_type)} is not one of {', '.join(t for t in HOST_PATH_TYPES if t)}",
            )


def _validate_envs(envs: Sequence[EnvVar], path: str, r: Report) -> None:
    for i, env in enumerate(envs):
        if not env.name:
            r.error(f"{path}[{i}].name", "must not be empty")
        if env.value is not None and env.value_from is not None:
            r.error(f"{path}[{i}]", "value and valueFrom are mutually exclusive")


def _validate_etcd(c: ClusterConfiguration, r: Report) -> None:
    local, external = c.etcd.local, c.etcd.external
    if local is not None and external is not None:
        r.error("etcd", "local and external are mutually exclusive; set only one")
    if local is not None:
        _validate_abs("etcd.local.dataDir", local.data_dir, r, max_bytes=MAX_WRITE_DIR_BYTES)
        if local.data_dir.startswith("/") and (
            path_within(local.data_dir, c.certificates_dir) or path_within(c.certificates_dir, local.data_dir)
        ):
            r.error(
                "etcd.local.dataDir",
                f"{q(local.data_dir)} overlaps certificatesDir {q(c.certificates_dir)}; "
                "etcd data and the PKI need separate directories",
            )
        _validate_image_repository("etcd.local.imageRepository", local.image_repository, r, required=False)
        _validate_image_tag("etcd.local.imageTag", local.image_tag, r)
        _validate_args(local.extra_args, "etcd.local.extraArgs", r, _READ_BACK["etcd.local"])
        _validate_envs(local.extra_envs, "etcd.local.extraEnvs", r)
        _validate_sans("etcd.local.serverCertSANs", local.server_cert_sans, r)
        _validate_sans("etcd.local.peerCertSANs", local.peer_cert_sans, r)
    if external is None:
        return
    if not external.endpoints:
        r.error("etcd.external.endpoints", "at least one endpoint is required")
    for name, value in (
        ("caFile", external.ca_file),
        ("certFile", external.cert_file),
        ("keyFile", external.key_file),
    ):
        if value:
            _validate_abs(f"etcd.external.{name}", value, r)
    if bool(external.cert_file) != bool(external.key_file):
        missing = "keyFile" if external.cert_file else "certFile"
        present = "certFile" if external.cert_file else "keyFile"
        r.error(f"etcd.external.{missing}", f"is required when etcd.external.{present} is set")
    if external.cert_file and external.key_file and not external.ca_file:
        r.error("etcd.external.caFile", "is required when certFile and keyFile are set")
    tls = bool(external.ca_file or external.cert_file or external.key_file)
    for i, url in enumerate(external.endpoints):
        problem = url_problem(url, ("https", "http"))
        if problem:
            r.error(f"etcd.external.endpoints[{i}]", problem)
        elif tls and urlsplit(url).scheme != "https":
            r.error(f"etcd.external.endpoints[{i}]", f"{q(url)} must use https when TLS files are set")
