"""What changes with the Kubernetes version: the etcd release kubeadm pairs with it, and manifest features.

Differences between the supported versions (v1.31 to v1.35), as kubeadm renders them:

| version | etcd image | etcd flags | scheduler probes (``components/spec.py``) | probe port |
|---|---|---|---|---|
| v1.31 | 3.5.15-0 | ``--experimental-*`` (3.5) | its ``older_probes``: no readiness | numeric |
| v1.32 | 3.5.16-0 | 3.5 | its ``probes``: liveness, readiness, startup | numeric |
| v1.33 | 3.5.21-0 | 3.5 | as v1.32 | numeric |
| v1.34 | 3.6.4-0 | 3.6 (``--feature-gates=InitialCorruptCheck=true``) | as v1.32 | named ``probe-port`` |
| v1.35 | 3.6.6-0 | 3.6 | as v1.32 | named ``probe-port`` |
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ETCD_TAGS = {31: "3.5.15-0", 32: "3.5.16-0", 33: "3.5.21-0", 34: "3.6.4-0", 35: "3.6.6-0"}


def etcd_version_of(tag: str) -> tuple[int, int]:
    """``3.6.4-0`` -> (3, 6); an unparseable custom tag is treated as the newest etcd."""
    match = re.match(r"v?(\d+)\.(\d+)", tag)
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


@dataclass(frozen=True)
class Features:
    """Version-dependent choices for one rendering."""

    minor: int

    @property
    def named_probe_port(self) -> bool:
        return self.minor >= 34

    @property
    def default_etcd_tag(self) -> str:
        return ETCD_TAGS[self.minor]
