"""The kube-proxy addon: its KubeProxyConfiguration and kubeconfig, and the objects behind
``addon/kube-proxy``.

``config.conf`` holds kubeadm's settings (``clusterCIDR`` from ``podSubnet``, a bind address of the
advertise address's family, the in-pod kubeconfig) with every field of the user's
``KubeProxyConfiguration`` document merged over them; kube-proxy defaults the rest itself.
``kubeconfig.conf`` authenticates with the pod's service-account token against
``controlPlaneEndpoint`` (else the advertise address).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrap.addons.rendering import render_objects
from bootstrap.components.flags import wildcard_for
from bootstrap.components.pods import image_for
from bootstrap.config import Config
from bootstrap.config.tokens import TOKEN_GROUP
from bootstrap.host.kubelet_config import deep_merge
from bootstrap.pki.kubeconfig_files import endpoints_for

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KUBECONFIG_IN_POD = "/var/lib/kube-proxy/kubeconfig.conf"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class ProxyConfig:
    """The KubeProxyConfiguration to ship, and what the user should hear about how it was made."""

    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def proxy_config(cfg: Config) -> ProxyConfig:
    defaults: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "KubeProxyConfiguration",
        "bindAddress": wildcard_for(cfg.advertise_address),
        "clientConnection": {"kubeconfig": KUBECONFIG_IN_POD},
        "mode": "",
    }
    pod_subnet = cfg.cluster.networking.pod_subnet
    if pod_subnet:
        defaults["clusterCIDR"] = pod_subnet
    users = cfg.kube_proxy or {}
    merged = deep_merge(defaults, users)
    warnings = []
    given_cidr = users.get("clusterCIDR")
    if given_cidr is not None and pod_subnet and given_cidr != pod_subnet:
        warnings.append(
            f"KubeProxyConfiguration.clusterCIDR: {given_cidr!r} differs from networking.podSubnet "
            f"{pod_subnet!r}; kube-proxy uses {given_cidr!r}"
        )
    given_kubeconfig = (users.get("clientConnection") or {}).get("kubeconfig")
    if given_kubeconfig not in (None, KUBECONFIG_IN_POD):
        warnings.append(
            f"KubeProxyConfiguration.clientConnection.kubeconfig: {given_kubeconfig!r} replaced by "
            f"{KUBECONFIG_IN_POD!r}, where the kube-proxy pod finds its kubeconfig"
        )
        merged["clientConnection"]["kubeconfig"] = KUBECONFIG_IN_POD
    return ProxyConfig(merged, warnings)


def proxy_kubeconfig(server: str) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {"certificate-authority": f"{SERVICE_ACCOUNT_DIR}/ca.crt", "server": server},
            }
        ],
        "contexts": [
            {"name": "default", "context": {"cluster": "default", "namespace": "default", "user": "default"}}
        ],
        "current-context": "default",
        "users": [{"name": "default", "user": {"tokenFile": f"{SERVICE_ACCOUNT_DIR}/token"}}],
    }
    return yaml.safe_dump(document, sort_keys=False)


def kube_proxy_objects(cfg: Config, config: ProxyConfig | None = None) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRoleBinding, Role, RoleBinding, ConfigMap, DaemonSet, in that order."""
    config = config or proxy_config(cfg)
    server = endpoints_for(cfg.advertise_address, cfg.bind_port, cfg.cluster.control_plane_endpoint).cluster
    return render_objects(
        "kube-proxy.yaml.j2",
        {
            "config_conf": yaml.safe_dump(config.document, sort_keys=True),
            "kubeconfig_conf": proxy_kubeconfig(server),
            "token_group": TOKEN_GROUP,
            "image": image_for(cfg, "kube-proxy"),
            "image_pull_policy": cfg.init.node_registration.image_pull_policy,
        },
    )
