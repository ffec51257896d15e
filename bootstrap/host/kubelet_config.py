"""The KubeletConfiguration we write: kubeadm's defaults with the user's document merged over them.

Also decides which static pod directory a run uses, since the kubelet config is where that fact lives.
Pure apart from rendering the defaults template: no run data, nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootstrap.config.dnsaddress import dns_service_ip
from bootstrap.config.kubeversion import minor_of
from bootstrap.host.kubelet import CRI_IN_CONFIG_FROM_MINOR, DEFAULT_STATIC_POD_PATH

if TYPE_CHECKING:
    from bootstrap.config import Config


@dataclass
class KubeletSettings:
    """The merged KubeletConfiguration and what the user should hear about how it was made."""

    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; nested mappings are merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def static_pod_path(
    explicit: Mapping[str, Any] | None,
    users_document: Mapping[str, Any] | None,
    on_disk: Mapping[str, Any] | None,
) -> str:
    """The kubelet's watched directory: the first ``staticPodPath`` found in an explicitly named kubelet
    config, the user's KubeletConfiguration document, the kubelet config on disk; else kubeadm's default."""
    for source in (explicit, users_document, on_disk):
        if source and isinstance(source.get("staticPodPath"), str):
            return str(source["staticPodPath"])
    return DEFAULT_STATIC_POD_PATH


def kubelet_settings(cfg: Config, pod_path: str) -> KubeletSettings:
    """The KubeletConfiguration for ``cfg``, watching ``pod_path``."""
    import yaml

    from bootstrap.components.render import render_template

    defaults = yaml.safe_load(
        render_template(
            "kubelet-config.yaml.j2",
            {
                "client_ca_file": f"{cfg.cert_dir}/ca.crt",
                "cluster_dns": dns_service_ip(cfg.cluster.networking.service_subnet),
                "cluster_domain": cfg.cluster.networking.dns_domain,
                "static_pod_path": pod_path,
            },
        )
    )
    merged = deep_merge(defaults, cfg.kubelet or {})
    # The manifests go to pod_path: a kubelet watching elsewhere would never start them.
    merged["staticPodPath"] = pod_path
    warnings = []
    if merged.get("rotateCertificates") is False:
        warnings.append("KubeletConfiguration.rotateCertificates: forced to true, as kubeadm does")
    merged["rotateCertificates"] = True
    if minor_of(cfg.kubernetes_version) >= CRI_IN_CONFIG_FROM_MINOR:
        merged.setdefault("containerRuntimeEndpoint", cfg.init.node_registration.cri_socket)
    return KubeletSettings(merged, warnings)
