"""Typed model of the kubeadm ``v1beta4`` InitConfiguration and ClusterConfiguration documents.

The models carry the full ``kubeadm.k8s.io/v1beta4`` field set so that every file kubeadm accepts is
accepted here too. YAML keys are camelCase (aliases); Python attributes are snake_case.

The models are plain dataclasses, so that a run without a config file builds its defaults without
pydantic: :mod:`bootstrap.config.schema` validates files into these same classes with pydantic (unknown
keys and wrong types rejected, strict mode), and the loader translates its errors into
``"<field.path>: <problem>"`` strings.

Defaults that do not depend on the host live here, as field defaults, in one place (the ``DEFAULT_*``
constants). Host-dependent defaults (node name, advertise address) are filled by the loader.

:data:`ACTED_FIELDS` lists what kube-bootstrap acts on; :data:`WARNED_FIELDS` lists the fields that are
accepted for compatibility but ignored: setting them to a non-neutral value produces a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, fields
from dataclasses import field as dc_field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Final, Literal

from bootstrap.config.durations import format_go_duration, parse_go_duration
from bootstrap.config.hostport import APISERVER_PORT
from bootstrap.config.keyalgorithms import DEFAULT_ENCRYPTION_ALGORITHM
from bootstrap.config.tokens import TOKEN_GROUP

KUBEADM_API_VERSION: Final = "kubeadm.k8s.io/v1beta4"

# ---- Defaults (the one place; host-dependent ones are applied by the loader) ----
DEFAULT_KUBERNETES_VERSION = "v1.34.2"
SUPPORTED_MINORS = range(31, 36)  # v1.31 .. v1.35
DEFAULT_CLUSTER_NAME = "kubernetes"
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_CERTIFICATES_DIR = "/etc/kubernetes/pki"
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"
DEFAULT_ETCD_DATA_DIR = "/var/lib/etcd"
DEFAULT_CERTIFICATE_VALIDITY = timedelta(hours=8760)
DEFAULT_CA_CERTIFICATE_VALIDITY = timedelta(hours=87600)
DEFAULT_BIND_PORT = APISERVER_PORT
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
DEFAULT_IMAGE_PULL_POLICY = "IfNotPresent"
DEFAULT_TOKEN_TTL = timedelta(hours=24)
DEFAULT_TOKEN_USAGES = ("signing", "authentication")
DEFAULT_TOKEN_GROUPS = (TOKEN_GROUP,)
FALLBACK_ADVERTISE_ADDRESS = "127.0.0.1"

# Fields kube-bootstrap acts on (``*`` = every sub-field). Everything else is in WARNED_FIELDS.
ACTED_FIELDS: tuple[str, ...] = (
    "InitConfiguration.localAPIEndpoint.advertiseAddress",
    "InitConfiguration.localAPIEndpoint.bindPort",
    "InitConfiguration.nodeRegistration.name",
    "InitConfiguration.nodeRegistration.criSocket",
    "InitConfiguration.nodeRegistration.taints",
    "InitConfiguration.nodeRegistration.kubeletExtraArgs",
    "InitConfiguration.nodeRegistration.ignorePreflightErrors",
    "InitConfiguration.nodeRegistration.imagePullPolicy",
    "InitConfiguration.skipPhases",
    "InitConfiguration.dryRun",
    "InitConfiguration.timeouts.*",
    "InitConfiguration.bootstrapTokens",
    "InitConfiguration.certificateKey",
    "ClusterConfiguration.controlPlaneEndpoint",
    "ClusterConfiguration.kubernetesVersion",
    "ClusterConfiguration.clusterName",
    "ClusterConfiguration.networking.*",
    "ClusterConfiguration.certificatesDir",
    "ClusterConfiguration.imageRepository",
    "ClusterConfiguration.{apiServer,controllerManager,scheduler}.{extraArgs,extraVolumes,extraEnvs}",
    "ClusterConfiguration.apiServer.certSANs",
    "ClusterConfiguration.etcd.local.{dataDir,imageRepository,imageTag,extraArgs,extraEnvs,"
    "serverCertSANs,peerCertSANs}",
    "ClusterConfiguration.etcd.external.*",
    "ClusterConfiguration.dns.{imageRepository,imageTag,disabled}",
    "ClusterConfiguration.proxy.disabled",
    "ClusterConfiguration.encryptionAlgorithm",
    "ClusterConfiguration.certificateValidityPeriod",
    "ClusterConfiguration.caCertificateValidityPeriod",
)

# Accepted but not acted on: (kind, dotted path, neutral values). A value outside the neutral set warns.
WARNED_FIELDS: tuple[tuple[str, str, tuple[object, ...]], ...] = (
    ("InitConfiguration", "patches", (None,)),
    ("InitConfiguration", "nodeRegistration.imagePullSerial", (None, True)),
    ("ClusterConfiguration", "featureGates", (None,)),
    ("ClusterConfiguration", "apiServer.timeoutForControlPlane", (None,)),
)


def _shown(value: str) -> str:
    from bootstrap.config.validation import q

    return q(value)


def _to_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as exc:
            why = "out of range for a Go duration, at most 2562047h" if "out of range" in str(exc) else None
            raise ValueError(
                f"invalid duration {_shown(value)} ({why or 'expected a Go duration such as 4m0s or 8760h'})"
            ) from None
    raise ValueError(
        f"invalid duration {_shown(str(value))} (expected a Go duration string such as 4m0s or 8760h)"
    )


def _to_time(value: object) -> object:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"invalid time {_shown(str(value))} (expected RFC 3339, e.g. 2030-01-01T00:00:00Z)"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError(f"invalid time {_shown(str(value))} (expected an RFC 3339 string)")
    parsed = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        # Every later use works in UTC: a time whose UTC form falls outside years 1-9999 is unusable.
        parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"invalid time {_shown(str(value))} (out of range)") from None
    return parsed


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Converted:
    """``Annotated`` metadata of a type that YAML spells as a string: ``parse`` takes the YAML value
    (raising ValueError with the message to show), ``format`` gives the YAML string back."""

    parse: Callable[[object], object]
    format: Callable[[Any], str]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from bootstrap.config.schema import converted_schema

        return converted_schema(self, handler(source))


GO_DURATION: Final = Converted(_to_duration, format_go_duration)
RFC3339_TIME: Final = Converted(_to_time, _format_time)

GoDuration = Annotated[timedelta, GO_DURATION]
"""A ``metav1.Duration``: Go duration string in YAML, ``timedelta`` in Python."""

Rfc3339Time = Annotated[datetime, RFC3339_TIME]
"""A ``metav1.Time``: RFC 3339 in YAML, timezone-aware ``datetime`` in Python."""


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _alias(alias: str) -> dict[str, str]:
    """Field metadata naming a YAML key that is not the plain camelCase of the attribute."""
    return {"alias": alias}


class _Model:
    """Base of every document type (each a ``@dataclass(kw_only=True)``): camelCase aliases, unknown
    keys forbidden, no type coercion when validated by :mod:`bootstrap.config.schema`."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # set by each subclass's @dataclass
    # Read by pydantic when it validates into the dataclass; a plain dict, so defining it needs no pydantic.
    __pydantic_config__: ClassVar[dict[str, object]] = {
        "extra": "forbid",
        "strict": True,
        "alias_generator": _camel,
        "populate_by_name": True,
        "validate_default": False,
    }

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from bootstrap.config.schema import document_schema

        return document_schema(cls, handler(source))


_ALIASES: dict[type[_Model], dict[str, str]] = {}


def aliases(model: type[_Model]) -> dict[str, str]:
    """Attribute name -> YAML key of every field of a document type."""
    known = _ALIASES.get(model)
    if known is None:
        known = _ALIASES[model] = {f.name: f.metadata.get("alias") or _camel(f.name) for f in fields(model)}
    return known


def given_fields(document: object) -> frozenset[str]:
    """The attribute names a validated document's input gave (pydantic's ``model_fields_set``)."""
    given: frozenset[str] = getattr(document, "_given", frozenset())
    return given


def mark_given(document: object, names: frozenset[str]) -> None:
    """Record which fields the input gave; not a field, so equality and dumps ignore it."""
    object.__setattr__(document, "_given", names)


# ---- shared pieces ----
@dataclass(kw_only=True)
class Arg(_Model):
    """One ``--name=value`` argument; v1beta4 lists allow repeats."""

    name: str
    value: str = ""


@dataclass(kw_only=True)
class HostPathMount(_Model):
    """An extra hostPath volume for a control-plane static pod."""

    name: str
    host_path: str
    mount_path: str
    read_only: bool = False
    path_type: str = ""


@dataclass(kw_only=True)
class EnvVar(_Model):
    """The subset of core/v1 EnvVar kubeadm passes through; ``valueFrom`` is kept as a mapping."""

    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


@dataclass(kw_only=True)
class ControlPlaneComponent(_Model):
    """Settings shared by the kube-controller-manager and kube-scheduler."""

    extra_args: list[Arg] = dc_field(default_factory=list)
    extra_volumes: list[HostPathMount] = dc_field(default_factory=list)
    extra_envs: list[EnvVar] = dc_field(default_factory=list)


@dataclass(kw_only=True)
class APIServer(ControlPlaneComponent):
    """kube-apiserver settings."""

    cert_sans: list[str] = dc_field(default_factory=list, metadata=_alias("certSANs"))
    # A v1beta3 leftover kubeadm tolerates with a warning; accepted, warned about, never acted on.
    timeout_for_control_plane: GoDuration | None = None


@dataclass(kw_only=True)
class ImageMeta(_Model):
    """Image override for components outside the Kubernetes release (etcd, CoreDNS)."""

    image_repository: str = ""
    image_tag: str = ""


@dataclass(kw_only=True)
class DNS(ImageMeta):
    """CoreDNS add-on settings: its image, or none at all (``disabled``)."""

    disabled: bool = False


@dataclass(kw_only=True)
class Proxy(_Model):
    """kube-proxy add-on settings: ``disabled`` installs none (e.g. with a CNI that replaces it)."""

    disabled: bool = False


@dataclass(kw_only=True)
class LocalEtcd(ImageMeta):
    """A stacked etcd member run as a static pod."""

    data_dir: str = DEFAULT_ETCD_DATA_DIR
    extra_args: list[Arg] = dc_field(default_factory=list)
    extra_envs: list[EnvVar] = dc_field(default_factory=list)
    server_cert_sans: list[str] = dc_field(default_factory=list, metadata=_alias("serverCertSANs"))
    peer_cert_sans: list[str] = dc_field(default_factory=list, metadata=_alias("peerCertSANs"))


@dataclass(kw_only=True)
class ExternalEtcd(_Model):
    """An etcd cluster managed elsewhere."""

    endpoints: list[str] = dc_field(default_factory=list)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(kw_only=True)
class Etcd(_Model):
    """Exactly one of ``local`` / ``external``; the loader defaults to ``local`` when neither is set."""

    local: LocalEtcd | None = None
    external: ExternalEtcd | None = None


@dataclass(kw_only=True)
class Networking(_Model):
    """Service/pod CIDRs (comma-separated for dual-stack) and the cluster DNS domain."""

    service_subnet: str = DEFAULT_SERVICE_SUBNET
    pod_subnet: str = ""
    dns_domain: str = DEFAULT_DNS_DOMAIN


@dataclass(kw_only=True)
class APIEndpoint(_Model):
    """Where this node's kube-apiserver advertises itself and listens."""

    advertise_address: str = ""
    bind_port: int = DEFAULT_BIND_PORT


@dataclass(kw_only=True)
class Taint(_Model):
    """A core/v1 Taint."""

    key: str
    value: str = ""
    effect: str
    time_added: Rfc3339Time | None = None


@dataclass(kw_only=True)
class NodeRegistrationOptions(_Model):
    """How this node registers itself. ``taints: None`` means the default control-plane taint."""

    name: str = ""
    cri_socket: str = DEFAULT_CRI_SOCKET
    taints: list[Taint] | None = None
    kubelet_extra_args: list[Arg] = dc_field(default_factory=list)
    ignore_preflight_errors: list[str] = dc_field(default_factory=list)
    image_pull_policy: str = DEFAULT_IMAGE_PULL_POLICY
    image_pull_serial: bool | None = None


@dataclass(kw_only=True)
class BootstrapToken(_Model):
    """A bootstrap token to create; ``token: None`` means one is generated at init time."""

    token: str | None = None
    description: str = ""
    ttl: GoDuration | None = None
    expires: Rfc3339Time | None = None
    usages: list[str] = dc_field(default_factory=lambda: list(DEFAULT_TOKEN_USAGES))
    groups: list[str] = dc_field(default_factory=lambda: list(DEFAULT_TOKEN_GROUPS))


@dataclass(kw_only=True)
class Patches(_Model):
    """Patch directory (not acted on)."""

    directory: str = ""


@dataclass(kw_only=True)
class Timeouts(_Model):
    """Timeouts of kubeadm operations (reference §5.3)."""

    control_plane_component_health_check: GoDuration = timedelta(minutes=4)
    kubelet_health_check: GoDuration = timedelta(minutes=4)
    kubernetes_api_call: GoDuration = dc_field(
        default=timedelta(minutes=1), metadata=_alias("kubernetesAPICall")
    )
    etcd_api_call: GoDuration = dc_field(default=timedelta(minutes=2), metadata=_alias("etcdAPICall"))
    tls_bootstrap: GoDuration = dc_field(default=timedelta(minutes=5), metadata=_alias("tlsBootstrap"))
    discovery: GoDuration = timedelta(minutes=5)
    upgrade_manifests: GoDuration = timedelta(minutes=5)


@dataclass(kw_only=True)
class InitConfiguration(_Model):
    """``kubeadm.k8s.io/v1beta4`` InitConfiguration: node-local, init-time settings."""

    api_version: Literal["kubeadm.k8s.io/v1beta4"] = KUBEADM_API_VERSION
    kind: Literal["InitConfiguration"] = "InitConfiguration"
    bootstrap_tokens: list[BootstrapToken] = dc_field(default_factory=list)
    dry_run: bool = False
    node_registration: NodeRegistrationOptions = dc_field(default_factory=NodeRegistrationOptions)
    local_api_endpoint: APIEndpoint = dc_field(
        default_factory=APIEndpoint, metadata=_alias("localAPIEndpoint")
    )
    certificate_key: str = ""
    skip_phases: list[str] = dc_field(default_factory=list)
    patches: Patches | None = None
    timeouts: Timeouts = dc_field(default_factory=Timeouts)


@dataclass(kw_only=True)
class ClusterConfiguration(_Model):
    """``kubeadm.k8s.io/v1beta4`` ClusterConfiguration: cluster-wide settings."""

    api_version: Literal["kubeadm.k8s.io/v1beta4"] = KUBEADM_API_VERSION
    kind: Literal["ClusterConfiguration"] = "ClusterConfiguration"
    etcd: Etcd = dc_field(default_factory=Etcd)
    networking: Networking = dc_field(default_factory=Networking)
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    control_plane_endpoint: str = ""
    api_server: APIServer = dc_field(default_factory=APIServer)
    controller_manager: ControlPlaneComponent = dc_field(default_factory=ControlPlaneComponent)
    scheduler: ControlPlaneComponent = dc_field(default_factory=ControlPlaneComponent)
    dns: DNS | None = None
    proxy: Proxy | None = None
    certificates_dir: str = DEFAULT_CERTIFICATES_DIR
    image_repository: str = DEFAULT_IMAGE_REPOSITORY
    feature_gates: dict[str, bool] | None = None
    cluster_name: str = DEFAULT_CLUSTER_NAME
    encryption_algorithm: str = DEFAULT_ENCRYPTION_ALGORITHM
    certificate_validity_period: GoDuration = DEFAULT_CERTIFICATE_VALIDITY
    ca_certificate_validity_period: GoDuration = DEFAULT_CA_CERTIFICATE_VALIDITY


@dataclass(frozen=True)
class Config:
    """A loaded, defaulted and validated configuration (what :func:`load_config` returns).

    ``init`` / ``cluster`` are the full models; ``kubelet`` / ``kube_proxy`` are the component-config
    documents kept verbatim (None when absent); ``warnings`` lists every accepted-but-ignored setting
    and every kubeadm-style warning, each naming its field path.
    """

    init: InitConfiguration
    cluster: ClusterConfiguration
    kubelet: dict[str, Any] | None = None
    kube_proxy: dict[str, Any] | None = None
    warnings: list[str] = dc_field(default_factory=list)

    @property
    def node_name(self) -> str:
        """The Node object name (``nodeRegistration.name``)."""
        return self.init.node_registration.name

    @property
    def advertise_address(self) -> str:
        """The IP the local kube-apiserver advertises (``localAPIEndpoint.advertiseAddress``)."""
        return self.init.local_api_endpoint.advertise_address

    @property
    def bind_port(self) -> int:
        """The kube-apiserver secure port (``localAPIEndpoint.bindPort``)."""
        return self.init.local_api_endpoint.bind_port

    @property
    def cert_dir(self) -> str:
        """The certificate directory as a host path (``certificatesDir``), before any rootfs mapping."""
        return self.cluster.certificates_dir

    @property
    def kubernetes_version(self) -> str:
        """The control-plane version, always in ``vX.Y.Z`` form."""
        return self.cluster.kubernetes_version

    @property
    def external_etcd(self) -> bool:
        """True when etcd is external (no local etcd static pod, no etcd PKI)."""
        return self.cluster.etcd.external is not None
