"""The PHASES tree behind ``bootstrap init`` and ``bootstrap phase``: order and names follow kubeadm.

Later phases (manifests, kubelet-start, wait-control-plane, upload-config, mark-control-plane,
bootstrap-token, show-join-command) are appended here as they are built.
"""

from __future__ import annotations

from bootstrap.phases.certs import CERTS
from bootstrap.phases.kubeconfig import KUBECONFIG
from bootstrap.phases.preflight import PREFLIGHT
from bootstrap.workflow import Phase

PHASES: tuple[Phase, ...] = (PREFLIGHT, CERTS, KUBECONFIG)
