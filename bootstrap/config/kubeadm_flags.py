"""The kubeadm flags that set one config field: the one table the CLI's options and the loader's
overrides are both built from.

Kept free of pydantic and of the loader: the CLI builds its options from it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KubeadmFlag:
    """One flag: its names, the document field it sets, and its help text."""

    names: tuple[str, ...]  # kubeadm's spelling first (the override key), then our older aliases
    document: str  # InitConfiguration, ClusterConfiguration or JoinConfiguration
    field: str  # camelCase path inside that document; ``[0]`` addresses (and creates) a list's first item
    help: str
    value_type: type = str  # ``bool``: a switch that takes no value
    repeatable: bool = False  # given more than once, the values make a list

    @property
    def param(self) -> str:
        """The click parameter name."""
        return self.names[0].replace("-", "_")


_INIT = "InitConfiguration"
_CLUSTER = "ClusterConfiguration"
_JOIN = "JoinConfiguration"

KUBEADM_FLAGS: tuple[KubeadmFlag, ...] = (
    KubeadmFlag(
        ("apiserver-advertise-address", "advertise-address"),
        _INIT,
        "localAPIEndpoint.advertiseAddress",
        "The IP address the API server advertises (default: the default-route address).",
    ),
    KubeadmFlag(
        ("apiserver-bind-port",),
        _INIT,
        "localAPIEndpoint.bindPort",
        "Port for the API server to bind to (6443).",
        int,
    ),
    KubeadmFlag(
        ("apiserver-cert-extra-sans",),
        _CLUSTER,
        "apiServer.certSANs",
        "Extra SANs (IPs or DNS names, comma-separated) for the API server certificate.",
    ),
    KubeadmFlag(
        ("cert-dir",), _CLUSTER, "certificatesDir", "Where certificates are stored (/etc/kubernetes/pki)."
    ),
    KubeadmFlag(
        ("control-plane-endpoint",),
        _CLUSTER,
        "controlPlaneEndpoint",
        "A stable host[:port] for the control plane.",
    ),
    KubeadmFlag(
        ("kubernetes-version",),
        _CLUSTER,
        "kubernetesVersion",
        "Kubernetes version of the control plane (stable-1, stable, latest: the newest supported).",
    ),
    KubeadmFlag(
        ("node-name",), _INIT, "nodeRegistration.name", "The node name (default: the hostname, lower-cased)."
    ),
    KubeadmFlag(
        ("pod-network-cidr",),
        _CLUSTER,
        "networking.podSubnet",
        "Pod network range; enables node CIDR allocation.",
    ),
    KubeadmFlag(
        ("service-cidr",), _CLUSTER, "networking.serviceSubnet", "Service virtual IP range (10.96.0.0/12)."
    ),
    KubeadmFlag(
        ("service-dns-domain",), _CLUSTER, "networking.dnsDomain", "Service DNS domain (cluster.local)."
    ),
    KubeadmFlag(
        ("token",),
        _INIT,
        "bootstrapTokens[0].token",
        "The bootstrap token to create, [a-z0-9]{6}.[a-z0-9]{16} (default: generated).",
    ),
    KubeadmFlag(
        ("token-ttl",),
        _INIT,
        "bootstrapTokens[0].ttl",
        "How long the bootstrap token is valid (24h0m0s; 0 never expires).",
    ),
    KubeadmFlag(
        ("cri-socket",),
        _INIT,
        "nodeRegistration.criSocket",
        "The CRI socket (unix:///var/run/containerd/containerd.sock).",
    ),
    KubeadmFlag(
        ("image-repository",),
        _CLUSTER,
        "imageRepository",
        "Registry to pull the control-plane images from (registry.k8s.io).",
    ),
    KubeadmFlag(
        ("certificate-key",),
        _INIT,
        "certificateKey",
        "Key (64 hex characters) that encrypts the certificates upload-certs uploads (default: generated).",
    ),
)

# Flag name (any spelling) -> (document kind, camelCase field path): what load_config's overrides take.
FLAG_FIELDS: dict[str, tuple[str, str]] = {
    name: (flag.document, flag.field) for flag in KUBEADM_FLAGS for name in flag.names
}

# `join`'s flags: a table of their own, so that init's options (built from KUBEADM_FLAGS) never grow them.
# Names shared with init (--token, --node-name, --certificate-key, --apiserver-*) set join's own fields.
JOIN_FLAGS: tuple[KubeadmFlag, ...] = (
    KubeadmFlag(
        ("token",),
        _JOIN,
        "discovery.bootstrapToken.token",
        "The token for both discovery and TLS bootstrap, unless the more specific flags are given.",
    ),
    KubeadmFlag(
        ("discovery-token",),
        _JOIN,
        "discovery.bootstrapToken.token",
        "The bootstrap token that validates the cluster information fetched from the API server.",
    ),
    KubeadmFlag(
        ("tls-bootstrap-token",),
        _JOIN,
        "discovery.tlsBootstrapToken",
        "The bootstrap token the kubelet authenticates with for its TLS bootstrap.",
    ),
    KubeadmFlag(
        ("discovery-token-ca-cert-hash",),
        _JOIN,
        "discovery.bootstrapToken.caCertHashes",
        "sha256:<hex> of the cluster CA's public key (SubjectPublicKeyInfo) to pin; repeatable.",
        repeatable=True,
    ),
    KubeadmFlag(
        ("discovery-token-unsafe-skip-ca-verification",),
        _JOIN,
        "discovery.bootstrapToken.unsafeSkipCAVerification",
        "Trust the cluster CA without a --discovery-token-ca-cert-hash pin.",
        bool,
    ),
    KubeadmFlag(
        ("discovery-file",),
        _JOIN,
        "discovery.file.kubeConfigPath",
        "A kubeconfig file (absolute path or https URL) that names the cluster and its CA.",
    ),
    KubeadmFlag(
        ("control-plane",),
        _JOIN,
        "controlPlane",
        "Join as a control-plane node: run a local API server (and etcd member).",
        bool,
    ),
    KubeadmFlag(
        ("certificate-key",),
        _JOIN,
        "controlPlane.certificateKey",
        "Key (64 hex characters) that decrypts the certificates init's upload-certs uploaded.",
    ),
    KubeadmFlag(
        ("apiserver-advertise-address",),
        _JOIN,
        "controlPlane.localAPIEndpoint.advertiseAddress",
        "The IP address this node's API server advertises (default: the default-route address).",
    ),
    KubeadmFlag(
        ("apiserver-bind-port",),
        _JOIN,
        "controlPlane.localAPIEndpoint.bindPort",
        "Port for this node's API server to bind to (6443).",
        int,
    ),
    KubeadmFlag(
        ("node-name",), _JOIN, "nodeRegistration.name", "The node name (default: the hostname, lower-cased)."
    ),
)

# join's flag name -> camelCase field path in JoinConfiguration: what load_join_config's overrides take.
JOIN_FLAG_FIELDS: dict[str, str] = {name: flag.field for flag in JOIN_FLAGS for name in flag.names}
