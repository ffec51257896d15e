"""kubeadm's version labels (``stable-1``, ``stable``, ``latest``, ``stable-1.34``), resolved offline.

kubeadm looks labels up on dl.k8s.io; kube-bootstrap never goes online for that, so a label resolves
to the newest version it supports (of that minor, for ``stable-1.X``) and the caller warns, naming it.
"""

from __future__ import annotations

import re

from bootstrap.config.kubeversion import minor_of
from bootstrap.config.model import DEFAULT_KUBERNETES_VERSION, SUPPORTED_MINORS

# The newest patch release each supported minor is known to have; .0 where no later one is pinned.
NEWEST_PATCH = {minor: f"v1.{minor}.0" for minor in SUPPORTED_MINORS} | {
    minor_of(DEFAULT_KUBERNETES_VERSION): DEFAULT_KUBERNETES_VERSION
}
NEWEST_SUPPORTED = NEWEST_PATCH[max(SUPPORTED_MINORS)]

_LABEL = re.compile(r"(stable|latest)(-1)?")
_MINOR_LABEL = re.compile(r"(stable|latest)-1\.([0-9]+)")


def resolve_label(version: str) -> tuple[str, str | None]:
    """``(version, None)`` for anything but a label; ``(resolved, warning)`` for a label we can resolve.

    A ``stable-1.X`` label for an unsupported minor is returned unchanged: validation names it.
    """
    if _LABEL.fullmatch(version):
        resolved = NEWEST_SUPPORTED
    else:
        match = _MINOR_LABEL.fullmatch(version)  # fullmatch: a trailing newline is no label
        if match is None or int(match.group(2)) not in NEWEST_PATCH:
            return version, None
        resolved = NEWEST_PATCH[int(match.group(2))]
    return resolved, (
        f"kubernetesVersion: {version!r} resolved offline to {resolved}, the newest version "
        "kube-bootstrap supports for it; set an exact version to choose another"
    )
