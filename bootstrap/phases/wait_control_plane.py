"""Adapter for the ``wait-control-plane`` phase: build the plan from what is on disk, then wait."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.wait.waiter import WaitPlan
    from bootstrap.workflow.rundata import RunData


def build_plan(rd: RunData) -> WaitPlan:
    from bootstrap.components.render import components_for
    from bootstrap.errors import PhaseError
    from bootstrap.host.kubelet import healthz_endpoint, read_kubelet_config
    from bootstrap.wait.health import Endpoint, endpoint_from_manifest
    from bootstrap.wait.waiter import WaitPlan

    cfg = rd.config
    endpoints = {}
    for component in components_for(cfg):
        path = rd.manifest_dir / f"{component}.yaml"
        if not path.exists():
            raise PhaseError(f'{path}: no manifest to wait for; run "bootstrap phase manifests" first')
        endpoints[component] = endpoint_from_manifest(component, path)
    kubelet_config = read_kubelet_config(rd.kubelet_config_path)
    host, port = healthz_endpoint(kubelet_config)
    watched = kubelet_config.get("staticPodPath") if kubelet_config else None
    timeout = rd.options.timeout or cfg.init.timeouts.control_plane_component_health_check.total_seconds()
    return WaitPlan(
        node_name=cfg.node_name,
        endpoints=endpoints,
        freshness=dict(rd.manifest_writes),
        settle=rd.options.settle,
        timeout=timeout,
        kubelet_healthz=Endpoint("kubelet", "http", host, port, "/healthz", False) if port else None,
        admin_conf=rd.kubernetes_dir / "admin.conf",
        manifest_dir=str(rd.options.output_dir or rd.static_pod_path),
        kubelet_watches=str(watched) if watched else None,
    )


def _run(rd: RunData) -> list[Outcome]:
    result = rd.control_plane_waiter(build_plan(rd))
    if result is None:  # a dry run waits for nothing
        return [Outcome(False, "Dry run: not waiting")]
    return [Outcome(False, f"The control plane is healthy after {result.elapsed:.1f}s", [], result.to_dict())]


WAIT_CONTROL_PLANE = Phase(
    name="wait-control-plane",
    help="Wait for the kubelet and every control-plane component (mirror pod and health endpoint)",
    run=_run,
)
