"""``upgrade apply``: swap one component at a time, roll back the one that fails.

After the plan and the user's confirmation: back up the manifests it will replace and the
certificates it will touch; renew the control-plane certificates (an upgrade to another version,
unless asked not to) and re-issue those whose SANs changed; then etcd, kube-apiserver,
kube-controller-manager and kube-scheduler in turn through the rollout primitive
(:func:`bootstrap.wait.rollout.roll_out`). A component that does not come back healthy is rolled back
from the backup (and waited for again), and the apply stops there with exit 5 and what changed. On
success the stored configuration is updated. A plan with no change writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.components.annotations import CERT_GENERATION, with_annotation
from bootstrap.errors import WaitTimeoutError
from bootstrap.host.ledger import run_lock
from bootstrap.pki.expiration import RENEWABLE_KUBECONFIGS, renew
from bootstrap.pki.keys import KeySource
from bootstrap.pki.specs import LEAF_NAMES, get_spec
from bootstrap.upgrade import podfields
from bootstrap.upgrade.backup import Backup, backup_dir, make_backup
from bootstrap.upgrade.certsans import reissue
from bootstrap.upgrade.plan import ComponentPlan, UpgradePlan
from bootstrap.upgrade.prepare import Prepared, UpgradeRequest, store
from bootstrap.upgrade.source import STORED_NAME
from bootstrap.wait.rollout import RolloutOutcome, roll_out, static_pod_node
from bootstrap.workflow.rundata import RunData


class UpgradeFailed(WaitTimeoutError):
    """A component did not come back healthy with its new manifest (exit 5); it was rolled back."""


@dataclass
class Applied:
    """What an apply did, for the result document."""

    backup: Path | None = None
    renewed: list[str] = field(default_factory=list)
    reissued: list[str] = field(default_factory=list)
    rollouts: list[RolloutOutcome] = field(default_factory=list)
    config_updated: bool = False

    def to_dict(self, rd: RunData) -> dict[str, Any]:
        return {
            "backupDir": rd.reported_path(self.backup) if self.backup is not None else None,
            "certificatesRenewed": self.renewed,
            "certificatesReissued": self.reissued,
            "rollouts": [o.to_dict() for o in self.rollouts],
            "configUpdated": self.config_updated,
        }


def _renewal_files(rd: RunData) -> list[Path]:
    files = []
    for name in LEAF_NAMES:
        spec = get_spec(name)
        files += [rd.cert_dir / spec.cert_file, rd.cert_dir / spec.key_file]
    files += [rd.kubernetes_dir / name for name in RENEWABLE_KUBECONFIGS]
    return [f for f in files if f.exists()]


def _renew(rd: RunData, applied: Applied) -> None:
    cfg = rd.config
    with KeySource(cfg.cluster.encryption_algorithm) as keys:
        outcomes = renew(
            "all",
            rd.cert_dir,
            rd.kubernetes_dir,
            rd.started,
            cfg.cluster.certificate_validity_period,
            keys,
            None,
        )
    for outcome in outcomes:
        if outcome.changed:
            rd.reporter.info("upgrade/certs", outcome.message)
            applied.renewed += [rd.reported_path(f) for f in outcome.files if f.suffix in (".crt", ".conf")]


def apply(
    prepared: Prepared,
    request: UpgradeRequest,
    confirm: Callable[[UpgradePlan], None],
    progress: Any = None,
) -> Applied:
    """Carry out ``prepared``'s plan (see the module docstring); ``confirm`` raises to stop."""
    rd, plan = prepared.rd, prepared.plan
    applied = Applied()
    if plan.noop:
        if plan.config_changed:
            confirm(plan)
            applied.config_updated = store(rd)
        return applied
    confirm(plan)
    renewing = prepared.renews_certificates(request)
    with run_lock(rd.fs, warn=rd.reporter.warn):
        changed = plan.changed_components
        cert_files = _renewal_files(rd) if renewing else []
        for change in plan.certificates:
            cert_files += [rd.cert_dir / name for name in change.files]
        backup = make_backup(
            backup_dir(rd.kubernetes_dir, rd.started),
            rd.manifest_dir,
            [rd.manifest_dir / f"{c.component}.yaml" for c in changed],
            {"pki": rd.cert_dir, "kubeconfig": rd.kubernetes_dir},
            sorted(set(cert_files)),
        )
        applied.backup = backup.directory
        rd.reporter.info(
            "upgrade/backup", f"Backed up what will change to {rd.reported_path(backup.directory)}"
        )
        if renewing:
            _renew(rd, applied)
        for change in plan.certificates:
            reissue(change, rd.cert_dir, rd.config, rd.started)
            rd.reporter.info("upgrade/certs", f"Re-issued {change.text()}")
            applied.reissued.append(change.name)
        node = static_pod_node(
            rd.manifest_dir,
            rd.static_pod_path,
            rd.kubernetes_dir,
            rd.config.node_name,
            rd.kubelet_config_path,
        )
        for component in changed:
            text = _final_text(rd, component)
            rd.reporter.info(
                "upgrade/apply", f"Upgrading {component.component}: {'; '.join(component.summary())}"
            )
            outcome = roll_out(
                node,
                component.component,
                text,
                settle=request.settle,
                timeout=request.timeout,
                progress=progress,
                debug=rd.reporter.debug,
            )
            applied.rollouts.append(outcome)
            if not outcome.healthy:
                _roll_back(rd, node, component, plan, backup, outcome, request, applied, progress)
            rd.reporter.info(
                "upgrade/apply",
                f"{component.component} is healthy after {outcome.seconds:.1f}s "
                f"(mirror pod hash {outcome.old_hash} → {outcome.new_hash})",
            )
        applied.config_updated = store(rd)
    return applied


def _final_text(rd: RunData, component: ComponentPlan) -> str:
    """The manifest to write: as planned, with a new cert-generation for certificates re-issued now."""
    if not component.restart_for:
        return component.new_text
    files = [rd.cert_dir / get_spec(name).cert_file for name in component.restart_for]
    return with_annotation(component.new_text, CERT_GENERATION, podfields.fingerprint(files))


def _roll_back(
    rd: RunData,
    node: Any,
    component: ComponentPlan,
    plan: UpgradePlan,
    backup: Backup,
    failed: RolloutOutcome,
    request: UpgradeRequest,
    applied: Applied,
    progress: Any,
) -> None:
    """Restore ``component`` from the backup, wait for it, and raise :class:`UpgradeFailed`."""
    name = component.component
    rd.reporter.warn(f"{name} did not become healthy with its new manifest: rolling it back")
    for change in plan.certificates:
        if change.component == name:
            for file in change.files:
                backup.restore(rd.cert_dir / file)
    previous = backup.manifest(name)
    what = "; ".join(component.summary())
    if previous is None:
        raise UpgradeFailed(
            f"{name} did not become healthy after the change ({what}), and it had no manifest to roll "
            f"back to\n{failed.diagnosis or ''}".rstrip()
        )
    restored = roll_out(
        node,
        name,
        previous,
        settle=request.settle,
        timeout=request.timeout,
        progress=progress,
        debug=rd.reporter.debug,
        expect_hash=failed.old_hash,
    )
    applied.rollouts.append(restored)
    where = rd.reported_path(backup.directory)
    state = (
        f"rolled back from {where} and healthy again"
        if restored.healthy
        else f"rolled back from {where}, but NOT healthy again: {restored.diagnosis}"
    )
    error = UpgradeFailed(
        f"{name} did not become healthy after the change ({what}); {state}. "
        f"Nothing after {name} was touched, and {STORED_NAME} was not updated.\n"
        f"{failed.diagnosis or ''}".rstrip()
    )
    error.details = {"component": name, "changes": component.summary(), "applied": applied.to_dict(rd)}
    raise error
