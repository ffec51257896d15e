"""The PHASES tree behind ``bootstrap init`` and ``bootstrap phase``: order and names follow kubeadm."""

from __future__ import annotations

from bootstrap.phases.addon import ADDON
from bootstrap.phases.certs import CERTS
from bootstrap.phases.kubeconfig import KUBECONFIG
from bootstrap.phases.kubelet_finalize import KUBELET_FINALIZE
from bootstrap.phases.kubelet_start import KUBELET_START
from bootstrap.phases.manifests import MANIFESTS
from bootstrap.phases.postinit import BOOTSTRAP_TOKEN, MARK_CONTROL_PLANE, SHOW_JOIN_COMMAND, UPLOAD_CONFIG
from bootstrap.phases.preflight import PREFLIGHT
from bootstrap.phases.upload_certs import UPLOAD_CERTS
from bootstrap.phases.wait_control_plane import WAIT_CONTROL_PLANE
from bootstrap.workflow.tree import Phase

PHASES: tuple[Phase, ...] = (
    PREFLIGHT,
    CERTS,
    KUBECONFIG,
    MANIFESTS,
    KUBELET_START,
    WAIT_CONTROL_PLANE,
    UPLOAD_CONFIG,
    UPLOAD_CERTS,
    MARK_CONTROL_PLANE,
    BOOTSTRAP_TOKEN,
    KUBELET_FINALIZE,
    ADDON,
    SHOW_JOIN_COMMAND,
)
