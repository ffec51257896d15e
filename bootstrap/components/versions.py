"""What changes with the Kubernetes version: the image tags kubeadm pins for it, and manifest features.

The one version table: the static pod manifests, the addons and ``bootstrap config images list`` all
read their tags here. Differences between the supported versions (v1.31 to v1.35), as kubeadm renders
them:

| version | etcd image | etcd flags | scheduler probes (``components/spec.py``) | probe port |
|---|---|---|---|---|
| v1.31 | 3.5.15-0 | ``--experimental-*`` (3.5) | its ``older_probes``: no readiness | numeric |
| v1.32 | 3.5.16-0 | 3.5 | its ``probes``: liveness, readiness, startup | numeric |
| v1.33 | 3.5.21-0 | 3.5 | as v1.32 | numeric |
| v1.34 | 3.6.4-0 | 3.6 (``--feature-gates=InitialCorruptCheck=true``) | as v1.32 | named ``probe-port`` |
| v1.35 | 3.6.6-0 | 3.6 | as v1.32 | named ``probe-port`` |

Images outside the control plane (kubeadm's ``constants.go``: ``CoreDNSVersion``, ``PauseVersion``
of each release branch; the Corefile from ``phases/addons/dns/manifests.go``):

| version | CoreDNS | pause | Corefile ``cache`` |
|---|---|---|---|
| v1.31 | v1.11.3 | 3.10 | ``cache 30`` |
| v1.32 | v1.11.3 | 3.10 | ``cache 30`` with ``disable success``/``disable denial`` for the cluster domain |
| v1.33 | v1.12.0 | 3.10 | as v1.32 |
| v1.34 | v1.12.1 | 3.10.1 | as v1.32 |
| v1.35 | v1.13.1 | 3.10.1 | as v1.32 |

kube-proxy and the control-plane images are tagged with the Kubernetes version itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bootstrap.config.kubeversion import minor_of

ETCD_TAGS = {31: "3.5.15-0", 32: "3.5.16-0", 33: "3.5.21-0", 34: "3.6.4-0", 35: "3.6.6-0"}
COREDNS_TAGS = {31: "v1.11.3", 32: "v1.11.3", 33: "v1.12.0", 34: "v1.12.1", 35: "v1.13.1"}
PAUSE_TAGS = {31: "3.10", 32: "3.10", 33: "3.10", 34: "3.10.1", 35: "3.10.1"}
# The first minor whose Corefile keeps the cluster domain's answers out of CoreDNS's cache
# (kubernetes/kubernetes#128359): the kubernetes plugin has them fresh from its watch already.
CACHE_SKIPS_CLUSTER_DOMAIN_FROM = 32


def etcd_version_of(tag: str) -> tuple[int, int]:
    """``3.6.4-0`` -> (3, 6); an unparseable custom tag is treated as the newest etcd."""
    match = re.match(r"v?(\d+)\.(\d+)", tag)
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


@dataclass(frozen=True)
class Features:
    """Version-dependent choices for one rendering."""

    minor: int

    @classmethod
    def of(cls, kubernetes_version: str) -> Features:
        """The features of the minor release ``kubernetes_version`` (e.g. ``v1.34.1``) belongs to."""
        return cls(minor_of(kubernetes_version))

    @property
    def named_probe_port(self) -> bool:
        return self.minor >= 34

    @property
    def default_etcd_tag(self) -> str:
        return ETCD_TAGS[self.minor]

    @property
    def default_coredns_tag(self) -> str:
        return COREDNS_TAGS[self.minor]

    @property
    def pause_tag(self) -> str:
        return PAUSE_TAGS[self.minor]

    @property
    def cache_skips_cluster_domain(self) -> bool:
        return self.minor >= CACHE_SKIPS_CLUSTER_DOMAIN_FROM
