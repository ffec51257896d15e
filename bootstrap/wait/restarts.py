"""Restarting, one at a time, the static pods that use renewed certificates.

A component reads its certificates and kubeconfig when it starts, so renewed files take effect only
after a restart. Who uses which file is read from the manifests on disk (the files their flags and
``File`` volumes name), never assumed: a renewed admin.conf restarts nothing, a renewed
apiserver-etcd-client certificate only the API server. Each restart is a rollout of the same
manifest with a new :data:`CERT_GENERATION` annotation (the kubelet runs a new pod when the file
changes), waited healthy before the next one starts; the first one that does not come back stops
the rest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.components.annotations import CERT_GENERATION, with_annotation
from bootstrap.components.podfile import our_manifest
from bootstrap.components.references import referenced_files
from bootstrap.components.spec import SPECS
from bootstrap.host.kubelet import hostname_override
from bootstrap.wait.health import endpoint_from_pod
from bootstrap.wait.progress import Progress
from bootstrap.wait.rollout import RolloutOutcome, StaticPodNode, roll_out

KUBELET_CONF = "kubelet.conf"
NODE_USER_PREFIX = "system:node:"


def _normal(host_path: str) -> str:
    return os.path.normpath(host_path)


def users_of(manifest_dir: Path, renewed: Collection[str]) -> dict[str, list[str]]:
    """Component -> the ``renewed`` host paths its manifest on disk references, in restart order
    (etcd, kube-apiserver, kube-controller-manager, kube-scheduler); components using none are left
    out, and so are manifests that are not our static pods."""
    wanted = {_normal(p) for p in renewed}
    users: dict[str, list[str]] = {}
    for component in SPECS:
        pod = our_manifest(component, manifest_dir / f"{component}.yaml")
        if pod is None:
            continue
        used = [p for p in dict.fromkeys(_normal(f) for f in referenced_files(pod)) if p in wanted]
        if used:
            users[component] = sorted(used)
    return users


def control_plane_running(manifest_dir: Path) -> bool:
    """Whether this node's API server is up: its manifest is ours and something listens where its
    health endpoint is (a TCP connect: no client, no credentials)."""
    from bootstrap.cluster.probe import listening

    pod = our_manifest("kube-apiserver", manifest_dir / "kube-apiserver.yaml")
    if pod is None:
        return False
    endpoint = endpoint_from_pod("kube-apiserver", pod)
    return listening((endpoint.host, endpoint.port))


def kubelet_node_name(kubernetes_dir: Path, kubelet_flags: Path, fallback: str) -> str:
    """The name this node's kubelet registers (its mirror pods are ``<component>-<name>``): the
    ``system:node:`` user of kubelet.conf, else ``--hostname-override`` in the kubelet's flags, else
    ``fallback`` (the host name)."""
    import yaml

    try:
        document = yaml.safe_load((kubernetes_dir / KUBELET_CONF).read_text())
    except (OSError, yaml.YAMLError):
        document = None
    users = document.get("users") if isinstance(document, dict) else None
    if isinstance(users, list) and users and isinstance(users[0], dict):
        name = str(users[0].get("name") or "")
        if name.startswith(NODE_USER_PREFIX):
            return name.removeprefix(NODE_USER_PREFIX)
    return (hostname_override(kubelet_flags) or fallback).lower()


@dataclass
class RestartReport:
    """What the restarts did: each finished rollout in order, and the first failed one (if any)."""

    planned: dict[str, list[str]]
    done: list[RolloutOutcome] = field(default_factory=list)
    failed: RolloutOutcome | None = None

    @property
    def skipped(self) -> list[str]:
        """Planned components never touched (after a failure)."""
        touched = {o.component for o in self.done} | ({self.failed.component} if self.failed else set())
        return [c for c in self.planned if c not in touched]


def restart_in_turn(
    node: StaticPodNode,
    planned: dict[str, list[str]],
    generation: str,
    *,
    settle: float,
    timeout: float,
    progress: Progress | None = None,
    announce: Callable[[str], None] = lambda _: None,
    debug: Callable[[str], None] = lambda _: None,
) -> RestartReport:
    """Restart each component of ``planned`` in turn by setting :data:`CERT_GENERATION` to
    ``generation`` in its manifest, each waited healthy (``timeout`` seconds each) before the next."""
    report = RestartReport(planned)
    for component in planned:
        path = node.manifest_dir / f"{component}.yaml"
        text = with_annotation(path.read_text(), CERT_GENERATION, generation)
        announce(f"Restarting {component} (uses {', '.join(planned[component])})")
        outcome = roll_out(
            node, component, text, settle=settle, timeout=timeout, progress=progress, debug=debug
        )
        if not outcome.healthy:
            report.failed = outcome
            break
        report.done.append(outcome)
        announce(
            f"{component} restarted: mirror pod hash {outcome.old_hash} -> {outcome.new_hash}, "
            f"healthy after {outcome.seconds:.1f}s"
        )
    return report
