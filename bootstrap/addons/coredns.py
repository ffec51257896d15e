"""The CoreDNS addon: the Corefile and the objects behind ``addon/coredns``.

The ``kube-dns`` Service sits at :func:`~bootstrap.config.dnsaddress.dns_service_ip`, the address
kubelet-start writes into every kubelet's ``clusterDNS``; with a dual-stack ``serviceSubnet`` it stays
single-stack on the primary family, as kubeadm's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bootstrap.addons.rendering import render_objects
from bootstrap.cluster.objects import CONTROL_PLANE_TAINT
from bootstrap.components.images import coredns_image
from bootstrap.components.render import render_template
from bootstrap.components.versions import Features
from bootstrap.config import Config
from bootstrap.config.dnsaddress import dns_service_ip

REPLICAS = 2
NAMESPACE = "kube-system"
CONFIG_MAP = "coredns"
COREFILE_KEY = "Corefile"
# The hash of the Corefile we last wrote: a live Corefile that no longer matches it was edited by
# someone, and is kept (see corefile_drift).
COREFILE_HASH_ANNOTATION = "kube-bootstrap/corefile-sha256"


def corefile(cfg: Config) -> str:
    features = Features.of(cfg.kubernetes_version)
    return render_template(
        "coredns-corefile.j2",
        {
            "dns_domain": cfg.cluster.networking.dns_domain,
            "cache_skips_cluster_domain": features.cache_skips_cluster_domain,
        },
    )


def corefile_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def coredns_objects(cfg: Config) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap, Deployment, Service, in that order."""
    text = corefile(cfg)
    return render_objects(
        "coredns.yaml.j2",
        {
            "corefile": text,
            "corefile_hash": corefile_hash(text),
            "corefile_annotation": COREFILE_HASH_ANNOTATION,
            "replicas": REPLICAS,
            "control_plane_taint": CONTROL_PLANE_TAINT["key"],
            "image": coredns_image(cfg),
            "image_pull_policy": cfg.init.node_registration.image_pull_policy,
            "dns_ip": dns_service_ip(cfg.cluster.networking.service_subnet),
        },
    )


def corefile_drift(live: dict[str, Any] | None, wanted: str) -> str | None:
    """The live Corefile when someone changed it since we wrote it and it differs from ``wanted``;
    None when there is nothing to keep (no ConfigMap, the same text, or our own unedited text)."""
    if live is None:
        return None
    text = (live.get("data") or {}).get(COREFILE_KEY)
    if text is None or text == wanted:
        return None
    ours = ((live.get("metadata") or {}).get("annotations") or {}).get(COREFILE_HASH_ANNOTATION)
    if ours is not None and ours == corefile_hash(text):
        return None  # what we wrote last time, not edited since: ours to replace
    return str(text)
