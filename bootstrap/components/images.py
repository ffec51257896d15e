"""Every image a cluster made from a config runs, named from the one version table (``versions.py``).

kubeadm's rules for where an image comes from:

* control plane and kube-proxy: ``<imageRepository>/<component>:<kubernetesVersion>``;
* etcd: ``etcd.local.imageRepository`` (else ``imageRepository``), tag ``etcd.local.imageTag`` (else
  the pinned one), see :func:`bootstrap.components.pods.image_for`;
* CoreDNS: on the default registry it lives one level down (``registry.k8s.io/coredns/coredns``); a
  custom ``imageRepository`` holds it at the top (``<repo>/coredns``); ``dns.imageRepository`` wins
  over both, ``dns.imageTag`` over the pinned tag;
* pause: ``<imageRepository>/pause:<pinned>`` (the sandbox image the kubelet's runtime should use).
"""

from __future__ import annotations

from bootstrap.components.pods import image_for
from bootstrap.components.versions import Features
from bootstrap.config import Config
from bootstrap.config.model import DEFAULT_IMAGE_REPOSITORY

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _features(cfg: Config) -> Features:
    return Features.of(cfg.kubernetes_version)


def coredns_image(cfg: Config) -> str:
    dns = cfg.cluster.dns
    repository = cfg.cluster.image_repository
    if repository == DEFAULT_IMAGE_REPOSITORY:
        repository = f"{repository}/coredns"
    if dns is not None and dns.image_repository:
        repository = dns.image_repository
    tag = (dns.image_tag if dns is not None else "") or _features(cfg).default_coredns_tag
    return f"{repository}/coredns:{tag}"


def pause_image(cfg: Config) -> str:
    return f"{cfg.cluster.image_repository}/pause:{_features(cfg).pause_tag}"


def dns_enabled(cfg: Config) -> bool:
    return cfg.cluster.dns is None or not cfg.cluster.dns.disabled


def proxy_enabled(cfg: Config) -> bool:
    return cfg.cluster.proxy is None or not cfg.cluster.proxy.disabled


def cluster_images(cfg: Config) -> list[tuple[str, str]]:
    """``(name, image)`` for every image the cluster runs, in kubeadm's ``config images list`` order;
    a disabled addon's image and, with external etcd, etcd's are left out."""
    images = [(name, image_for(cfg, name)) for name in CONTROL_PLANE]
    if proxy_enabled(cfg):
        images.append(("kube-proxy", image_for(cfg, "kube-proxy")))
    if dns_enabled(cfg):
        images.append(("coredns", coredns_image(cfg)))
    images.append(("pause", pause_image(cfg)))
    if not cfg.external_etcd:
        images.append(("etcd", image_for(cfg, "etcd")))
    return images
