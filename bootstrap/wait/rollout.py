"""Rolling out a new manifest to one running static pod: the one safe way to change it.

The steps: remember the mirror pod's ``config.hash``, replace the manifest atomically (the temporary
file is a dot-file, which the kubelet never loads), then wait -- with the control-plane waiter, for
this one component -- until the kubelet runs a pod with another hash and that pod stays healthy for
the settle window. The result is a :class:`RolloutOutcome`; a component that does not come back
healthy is an outcome too (with the waiter's diagnosis), not an exception, because only the caller
knows whether to roll back, go on or stop. Nothing here restores the previous manifest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.components.podfile import load_pod
from bootstrap.components.spec import SPECS, is_our_pod
from bootstrap.components.strays import find_strays, refuse
from bootstrap.components.write import MANIFEST_DIR_MODE, MANIFEST_MODE
from bootstrap.errors import PhaseError, WaitTimeoutError
from bootstrap.host.fs import write_atomic
from bootstrap.host.kubelet import healthz_endpoint, read_kubelet_config
from bootstrap.wait.health import ClientTLS, Endpoint, endpoint_from_pod
from bootstrap.wait.observe import mirror_pod_hash
from bootstrap.wait.progress import Progress, progress_for
from bootstrap.wait.status import Freshness
from bootstrap.wait.waiter import ControlPlaneWaiter, WaitPlan, WaitResult

if TYPE_CHECKING:
    from bootstrap.cluster.client import KubeApi


@dataclass(frozen=True)
class StaticPodNode:
    """This node's static pods: where their manifests are and how to see their mirror pods."""

    manifest_dir: Path  # where the manifests are for this run (rootfs applied)
    manifest_dir_host: str  # the same directory as the kubelet names it, for messages
    admin_conf: Path
    node_name: str
    kubelet_healthz: Endpoint | None  # None: the kubelet serves no healthz (healthzPort 0)
    kubelet_watches: str | None  # staticPodPath of the kubelet config on disk (None: unknown)


def static_pod_node(
    manifest_dir: Path, manifest_dir_host: str, kubernetes_dir: Path, node_name: str, kubelet_config: Path
) -> StaticPodNode:
    """The :class:`StaticPodNode` of a node whose kubelet config is at ``kubelet_config``."""
    config = read_kubelet_config(kubelet_config)
    host, port = healthz_endpoint(config)
    watched = config.get("staticPodPath") if config else None
    return StaticPodNode(
        manifest_dir=manifest_dir,
        manifest_dir_host=manifest_dir_host,
        admin_conf=kubernetes_dir / "admin.conf",
        node_name=node_name,
        kubelet_healthz=Endpoint("kubelet", "http", host, port, "/healthz", False) if port else None,
        kubelet_watches=str(watched) if watched else None,
    )


@dataclass(frozen=True)
class RolloutOutcome:
    """What became of one component's new manifest."""

    component: str
    old_hash: str | None  # the mirror pod's config.hash before the write (None: no pod was seen)
    new_hash: str | None  # the hash of the pod that became healthy (None: none did)
    healthy: bool
    seconds: float  # from the write to healthy (or to giving up)
    written: bool  # False: the manifest already had this content; only its health was checked
    diagnosis: str | None = None  # why it is not healthy, for people (None when healthy)
    details: dict[str, Any] | None = None  # the wait's result document for this component

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "component": self.component,
            "oldHash": self.old_hash,
            "newHash": self.new_hash,
            "healthy": self.healthy,
            "seconds": round(self.seconds, 3),
            "written": self.written,
        }
        if self.diagnosis is not None:
            data["diagnosis"] = self.diagnosis
        return data


def roll_out(
    node: StaticPodNode,
    component: str,
    manifest_text: str,
    *,
    settle: float,
    timeout: float,
    progress: Progress | None = None,
    api_factory: Callable[[], KubeApi] | None = None,
    debug: Callable[[str], None] = lambda _: None,
    expect_hash: str | None = None,
) -> RolloutOutcome:
    """Replace ``component``'s manifest with ``manifest_text`` and wait for its new pod to be healthy.

    Raises :class:`PhaseError`, with nothing written, when ``manifest_text`` is not our static pod of
    ``component``, when a stray file in the directory would make the kubelet run something else too,
    or when admin.conf cannot be used to check health. Everything after the write is reported in the
    outcome: ``healthy`` False with a diagnosis when the new pod is not healthy and stable within
    ``timeout`` seconds (or a permanent API or TLS failure ends the wait).

    ``expect_hash`` is for putting back a manifest as it was (a rollback): the hash its pod had
    before, which counts as the new pod even when the API never saw the failed one in between.
    """
    if component not in SPECS:
        raise PhaseError(f"{component}: not a control-plane component ({', '.join(SPECS)})")
    filename = f"{component}.yaml"
    path = node.manifest_dir / filename
    pod = _parse(manifest_text, path)
    if pod is None or not is_our_pod(component, pod):
        raise PhaseError(f"{path}: the new manifest is not the static pod of {component}")
    strays = find_strays(node.manifest_dir, {f"{name}.yaml" for name in SPECS}, set(SPECS))
    if strays:
        raise refuse(strays)
    ClientTLS(node.admin_conf)  # a broken admin.conf fails here, before the write
    old_hash = mirror_pod_hash(node.admin_conf, component, node.node_name, debug)
    written_at = datetime.now(UTC)
    start = time.monotonic()
    written = write_atomic(path, manifest_text.encode(), MANIFEST_MODE, dir_mode=MANIFEST_DIR_MODE)
    # An unchanged file restarts nothing: then only the pod that runs now has to be healthy.
    freshness = {component: Freshness(old_hash, written_at, expect_hash)} if written else {}
    plan = _plan(node, component, endpoint_from_pod(component, pod), freshness, settle, timeout)
    try:
        result = _wait(plan, node, progress, api_factory)
    except WaitTimeoutError as exc:
        return RolloutOutcome(
            component,
            old_hash,
            None,
            False,
            time.monotonic() - start,
            written,
            diagnosis=exc.message,
            details=_component_details(exc.details),
        )
    except PhaseError as exc:  # a permanent API or TLS failure: the new pod cannot be shown healthy
        return RolloutOutcome(
            component, old_hash, None, False, time.monotonic() - start, written, diagnosis=exc.message
        )
    entry = result.components[0]
    new_hash = entry.view.config_hash if entry.view is not None else None
    return RolloutOutcome(
        component, old_hash, new_hash, True, time.monotonic() - start, written, details=entry.to_dict()
    )


def _parse(text: str, path: Path) -> dict[str, Any] | None:
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PhaseError(f"{path}: the new manifest is not valid YAML: {exc}") from exc
    return document if isinstance(document, dict) else None


def _plan(
    node: StaticPodNode,
    component: str,
    endpoint: Endpoint,
    freshness: dict[str, Freshness],
    settle: float,
    timeout: float,
) -> WaitPlan:
    return WaitPlan(
        node_name=node.node_name,
        endpoints={component: endpoint},
        freshness=freshness,
        settle=settle,
        timeout=timeout,
        kubelet_healthz=node.kubelet_healthz,
        admin_conf=node.admin_conf,
        manifest_dir=node.manifest_dir_host,
        kubelet_watches=node.kubelet_watches,
    )


def _wait(
    plan: WaitPlan, node: StaticPodNode, progress: Progress | None, api_factory: Callable[[], KubeApi] | None
) -> WaitResult:
    from bootstrap.cluster.client import admin_api

    factory = api_factory or (lambda: admin_api(node.admin_conf.parent))
    return ControlPlaneWaiter(plan, factory, progress or progress_for()).run()


def _component_details(details: dict[str, Any] | None) -> dict[str, Any] | None:
    components = (details or {}).get("components") or []
    return components[0] if components else None


def current_manifest(node: StaticPodNode, component: str) -> str | None:
    """The text of ``component``'s manifest on disk when it is our static pod of it, else None."""
    path = node.manifest_dir / f"{component}.yaml"
    if not is_our_pod(component, load_pod(path)):
        return None
    return path.read_text()
