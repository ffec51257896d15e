"""Typed model of the kubeadm ``v1beta4`` JoinConfiguration document.

Shares the node-registration, API-endpoint, patches and timeouts pieces with InitConfiguration (same
v1beta4 types in kubeadm). Unknown keys and wrong types are refused exactly as for init.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Final, Literal

from bootstrap.config.model import (
    DEFAULT_CERTIFICATES_DIR,
    KUBEADM_API_VERSION,
    APIEndpoint,
    NodeRegistrationOptions,
    Patches,
    Timeouts,
    _alias,
    _Model,
)

DEFAULT_CA_CERT_PATH: Final = f"{DEFAULT_CERTIFICATES_DIR}/ca.crt"

# Accepted but not acted on: (dotted path, neutral values). A value outside the neutral set warns.
JOIN_WARNED_FIELDS: tuple[tuple[str, tuple[object, ...]], ...] = (
    ("patches", (None,)),
    ("nodeRegistration.imagePullSerial", (None, True)),
)


@dataclass(kw_only=True)
class BootstrapTokenDiscovery(_Model):
    """Discovery through the ``cluster-info`` ConfigMap, checked with a bootstrap token's signature."""

    token: str = ""
    api_server_endpoint: str = ""
    ca_cert_hashes: list[str] = dc_field(default_factory=list)
    unsafe_skip_ca_verification: bool = dc_field(default=False, metadata=_alias("unsafeSkipCAVerification"))


@dataclass(kw_only=True)
class FileDiscovery(_Model):
    """Discovery from a kubeconfig file or https URL."""

    kube_config_path: str = ""


@dataclass(kw_only=True)
class Discovery(_Model):
    """How the joining node finds and trusts the cluster: exactly one of ``bootstrapToken`` / ``file``."""

    bootstrap_token: BootstrapTokenDiscovery | None = None
    file: FileDiscovery | None = None
    tls_bootstrap_token: str = ""


@dataclass(kw_only=True)
class JoinControlPlane(_Model):
    """Set when the node joins as a control-plane node."""

    local_api_endpoint: APIEndpoint = dc_field(
        default_factory=APIEndpoint, metadata=_alias("localAPIEndpoint")
    )
    certificate_key: str = ""


@dataclass(kw_only=True)
class JoinConfiguration(_Model):
    """``kubeadm.k8s.io/v1beta4`` JoinConfiguration."""

    api_version: Literal["kubeadm.k8s.io/v1beta4"] = KUBEADM_API_VERSION
    kind: Literal["JoinConfiguration"] = "JoinConfiguration"
    dry_run: bool = False
    # taints None: none on a worker, the control-plane taint on a control-plane node (as kubeadm).
    node_registration: NodeRegistrationOptions = dc_field(default_factory=NodeRegistrationOptions)
    ca_cert_path: str = DEFAULT_CA_CERT_PATH
    discovery: Discovery = dc_field(default_factory=Discovery)
    control_plane: JoinControlPlane | None = None
    skip_phases: list[str] = dc_field(default_factory=list)
    patches: Patches | None = None
    timeouts: Timeouts = dc_field(default_factory=Timeouts)


@dataclass(frozen=True)
class JoinConfig:
    """A loaded, defaulted and validated join configuration (what ``load_join_config`` returns).

    ``kubelet`` is the KubeletConfiguration document kept verbatim (None when absent); ``warnings``
    name the field of every accepted-but-ignored setting.
    """

    join: JoinConfiguration
    kubelet: dict[str, Any] | None = None
    warnings: list[str] = dc_field(default_factory=list)

    @property
    def node_name(self) -> str:
        """The Node object name (``nodeRegistration.name``)."""
        return self.join.node_registration.name

    @property
    def control_plane(self) -> bool:
        """True when the node joins as a control-plane node."""
        return self.join.control_plane is not None
