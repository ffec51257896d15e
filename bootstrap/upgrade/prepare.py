"""Before an upgrade writes anything: both configurations, the skew check, the plan.

Also the one write that needs no rollout: recording the wanted ClusterConfiguration in the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.cluster.apierror import ApiError
from bootstrap.cluster.client import admin_api
from bootstrap.cluster.probe import listening, server_address
from bootstrap.components.annotations import keep_generation
from bootstrap.components.pods import EtcdJoin
from bootstrap.components.render import components_for, render
from bootstrap.config import dump_cluster_configuration
from bootstrap.host.kubelet import KUBELET_FLAGS_ENV, read_kubelet_config
from bootstrap.host.kubelet_config import static_pod_path
from bootstrap.output import Reporter
from bootstrap.upgrade import podfields
from bootstrap.upgrade.certsans import san_changes
from bootstrap.upgrade.plan import ComponentPlan, UpgradePlan
from bootstrap.upgrade.skew import check_upgrade
from bootstrap.upgrade.source import (
    STORED_NAME,
    load_sources,
    manifest_image_version,
    node_overrides,
    store_config,
)
from bootstrap.workflow.rundata import RunData, RunOptions, host_view

# kubeadm's timeouts.upgradeManifests: how long one component may take to come back.
DEFAULT_TIMEOUT = 300.0


@dataclass
class UpgradeRequest:
    """What the command line asked for."""

    version: str | None = None
    config_file: Path | None = None
    rootfs: Path | None = None
    dry_run: bool = False
    diff: bool = False
    timeout: float = DEFAULT_TIMEOUT
    settle: float = 5.0
    certificate_renewal: bool = True
    output: str = "text"
    verbose: bool = False


@dataclass
class Prepared:
    rd: RunData
    plan: UpgradePlan

    def renews_certificates(self, request: UpgradeRequest) -> bool:
        """As kubeadm: an upgrade to another version renews the certificates (unless
        --certificate-renewal=false); a reconfiguration does not."""
        return self.plan.version_changes and request.certificate_renewal


def _joined_member(component: str, old_text: str | None) -> EtcdJoin | None:
    """An etcd member that joined an existing cluster keeps the membership it was started with
    (``--initial-cluster``, ``--initial-cluster-state=existing``), not the single-member one of init."""
    if component != "etcd":
        return None
    flags = podfields.flags(podfields.parse(old_text))
    if flags.get("initial-cluster-state") != "existing" or not flags.get("initial-cluster"):
        return None
    return EtcdJoin(flags["initial-cluster"])


def api_factory(rd: RunData) -> Callable[[], Any]:
    def build() -> Any:
        admin = rd.kubernetes_dir / "admin.conf"
        if not admin.exists():
            raise ApiError(f"{admin} does not exist")
        address = server_address(admin)
        if address is not None and not listening(address):
            raise ApiError(f"nothing listens at {address[0]}:{address[1]}")
        return admin_api(rd.kubernetes_dir)

    return build


def prepare(request: UpgradeRequest, reporter: Reporter) -> Prepared:
    """Read both configurations, check the skew policy, build the plan. Writes nothing."""
    rd = RunData(RunOptions(rootfs=request.rootfs, output=request.output, verbose=request.verbose), reporter)
    watched = static_pod_path(None, None, read_kubelet_config(rd.kubelet_config_path))
    apiserver_manifest = rd.fs.path(watched) / "kube-apiserver.yaml"
    current = manifest_image_version(apiserver_manifest)
    overrides = node_overrides(apiserver_manifest, rd.fs.path(KUBELET_FLAGS_ENV))
    sources = load_sources(request.config_file, request.version, current, api_factory(rd), overrides)
    wanted = sources.wanted
    rd.config = wanted  # the run renders and writes for the wanted configuration
    for warning in [*sources.warnings, *wanted.warnings]:
        reporter.warn(warning)
    current = current or (sources.stored.kubernetes_version if sources.stored else wanted.kubernetes_version)
    for warning in check_upgrade(current, wanted.kubernetes_version, sources.kubelets):
        reporter.warn(warning)
    certificates = san_changes(wanted, rd.cert_dir, rd.started)
    components = []
    view = host_view(rd)
    for component in components_for(wanted):
        path = rd.manifest_dir / f"{component}.yaml"
        old_text = path.read_text() if path.exists() else None
        rendered = render(component, wanted, view, etcd_join=_joined_member(component, old_text))
        # What an earlier renewal or re-issue set is kept: it asks for no restart now.
        new_text = keep_generation(path, rendered).text
        restart_for = [c.name for c in certificates if c.component == component]
        components.append(ComponentPlan(component, old_text, new_text, restart_for))
    stored_text = dump_cluster_configuration(sources.stored) if sources.stored is not None else None
    plan = UpgradePlan(
        current_version=current,
        target_version=wanted.kubernetes_version,
        stored_from=sources.stored_from,
        components=components,
        certificates=certificates,
        config_changed=stored_text != dump_cluster_configuration(wanted),
    )
    return Prepared(rd, plan)


def store(rd: RunData) -> bool:
    try:
        api = api_factory(rd)()
    except ApiError as exc:
        rd.reporter.warn(
            f"{STORED_NAME} not updated ({exc}); run `bootstrap upgrade apply` again to record it"
        )
        return False
    try:
        updated = store_config(api, rd.config)
    finally:
        api.close()
    if updated:
        rd.reporter.info("upgrade/config", f"Updated {STORED_NAME}")
    return updated
