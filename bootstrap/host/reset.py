"""``bootstrap reset``: undo what ``bootstrap init`` made on this host, and only that.

Order matters: the static pod manifests go first, so the kubelet stops the control plane (and,
while the API server still answers, removes the mirror pods; we wait for that, bounded); then the
etcd data, the PKI, the kubeconfigs and the kubelet files. What we remove comes from the ledger of
what we created; every other file is kept and listed.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.components.podfile import load_pod, pod_flags
from bootstrap.components.spec import our_component
from bootstrap.host.fs import Rootfs
from bootstrap.host.kubelet import KUBELET_CONF
from bootstrap.host.ledger import LEDGER, LOCK, STATE_DIR, Ledger
from bootstrap.output import Reporter
from bootstrap.results import RESULT_API_VERSION, host_path, rootfs_field

LABEL = "reset"
KUBELET_PKI_DIR = "/var/lib/kubelet/pki"


@dataclass
class ResetPlan:
    manifests: list[str] = field(default_factory=list)  # host paths of our static pod manifests
    components: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every other file we created
    dirs: list[str] = field(default_factory=list)  # directories we created, deepest first
    etcd_data: str | None = None
    node_name: str | None = None
    refused: list[str] = field(default_factory=list)  # ledger paths that lead outside the rootfs


@dataclass
class ResetResult:
    """What reset removed and kept, as host paths under ``root`` (``--rootfs``; None: /)."""

    root: Path | None = None
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    etcd_member: dict[str, object] | None = None  # this node's etcd member, removed or not

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        return {
            "apiVersion": RESULT_API_VERSION,
            "kind": "ResetResult",
            "rootfs": rootfs_field(self.root),
            "dryRun": dry_run,
            "ok": True,
            "changed": bool(self.removed),
            "removed": self.removed,
            "kept": self.kept,
            "notes": self.notes,
            "etcdMember": self.etcd_member,
        }


def plan_reset(fs: Rootfs) -> ResetPlan:
    plan = ResetPlan()
    entries = Ledger(fs).entries()
    for entry in entries:
        host, kind = entry["path"], entry["kind"]
        if kind == "modified" or (kind == "file" and host in plan.files + plan.manifests):
            continue  # files that were there before us stay (listed as kept); each path once
        if not _inside(fs, host):
            plan.refused.append(host)
            continue
        if kind == "dir":
            plan.dirs.append(host)
            continue
        if kind == "etcd-data":
            plan.etcd_data = host
            continue
        document = load_pod(fs.path(host)) if host.endswith((".yaml", ".conf")) else None
        component = our_component(document)
        if component and document is not None:
            plan.manifests.append(host)
            plan.components.append(component)
            if component == "etcd" and plan.etcd_data is None:
                # a ledger from before the data dir was recorded
                plan.etcd_data = dict(pod_flags(document)).get("data-dir")
        else:
            if host.endswith("/kubelet.conf") and document is not None:
                user = str((document.get("users") or [{}])[0].get("name", ""))
                plan.node_name = (
                    user.removeprefix("system:node:") if user.startswith("system:node:") else None
                )
            plan.files.append(host)
    client_files = kubelet_client_files(fs) if KUBELET_CONF in plan.files else []
    if client_files:
        plan.files += [f for f in client_files if f not in plan.files]
        plan.dirs.append(KUBELET_PKI_DIR)  # removed only when nothing else is left in it
    plan.dirs = sorted(dict.fromkeys(plan.dirs), key=lambda d: d.count("/"), reverse=True)
    return plan


def kubelet_client_files(fs: Rootfs) -> list[str]:
    """The client certificates the kubelet keeps for the kubelet.conf we wrote (kubelet-finalize points
    kubelet.conf at them): they authenticate to the cluster being reset, so they go with it (kubeadm
    empties /var/lib/kubelet)."""
    pki = fs.path(KUBELET_PKI_DIR)
    if not pki.is_dir():
        return []
    return [
        f"{KUBELET_PKI_DIR}/{entry.name}"
        for entry in sorted(pki.iterdir())
        if entry.name.startswith("kubelet-client-")
        and entry.name.endswith(".pem")
        and (entry.is_symlink() or entry.is_file())
    ]


def _inside(fs: Rootfs, host: str) -> bool:
    """``host`` names something inside the managed filesystem once links are followed (a tampered
    ledger or a link in the rootfs must not make reset delete anything outside it)."""
    if ".." in Path(host).parts:
        return False
    if fs.root is None:
        return True
    root = fs.root.resolve()
    real = fs.path(host)
    resolved = real.parent.resolve() / real.name
    return resolved == root or root in resolved.parents


def wait_for_mirror_pods_gone(admin_conf: Path, node: str, components: list[str], timeout: float) -> str:
    """Wait (bounded) until the kubelet has removed our mirror pods; say what happened."""
    from bootstrap.cluster.client import ApiError, admin_api

    names = {f"{c}-{node.lower()}" for c in components}
    deadline = time.monotonic() + timeout
    try:
        api = admin_api(admin_conf.parent)
    except ApiError as exc:  # reset goes on: the wait is a courtesy, the files are the job
        return f"not waiting for the mirror pods to go: {exc}"
    try:
        while True:
            try:
                pods = api.list_pods("kube-system", field_selector=f"spec.nodeName={node}")
            except ApiError as exc:
                if not exc.transient:
                    return f"not waiting for the mirror pods to go: {exc}"
                return f"the API server is gone ({exc}): the mirror pods go with it"
            left = sorted(names & {p["metadata"]["name"] for p in pods.get("items", [])})
            if not left:
                return "the kubelet removed the mirror pods"
            if time.monotonic() >= deadline:
                return f"mirror pods still present after {timeout:g}s: {', '.join(left)}"
            time.sleep(0.5)
    finally:
        api.close()


def _remove_file(fs: Rootfs, host: str, result: ResetResult, dry_run: bool) -> None:
    # The entry itself: a link (kubelet-client-current.pem) goes, not the file it leads to.
    path = fs.path(str(Path(host).parent)) / Path(host).name
    if not path.exists() and not path.is_symlink():
        return
    if not dry_run:
        path.unlink()
    result.removed.append(host)


def _leave_etcd(fs: Rootfs, plan: ResetPlan, result: ResetResult, reporter: Reporter, dry_run: bool) -> bool:
    """Take this node's member out of etcd while etcd still runs; True: keep the etcd data."""
    from bootstrap.etcd.leave import leave_by_manifest

    manifest = plan.manifests[plan.components.index("etcd")]
    leave = leave_by_manifest(fs.path(manifest), fs.path, dry_run=dry_run)
    result.etcd_member = leave.to_dict()
    for note in leave.notes:
        result.notes.append(note)
        reporter.info(LABEL, note)
    for warning in leave.warnings:
        reporter.warn(warning)
    return leave.keep_data


def run_reset(fs: Rootfs, reporter: Reporter, *, dry_run: bool, mirror_timeout: float) -> ResetResult:
    plan = plan_reset(fs)
    result = ResetResult(fs.root)
    verb = "Would remove" if dry_run else "Removed"
    keep_etcd_data = "etcd" in plan.components and _leave_etcd(fs, plan, result, reporter, dry_run)
    for host in plan.manifests:
        _remove_file(fs, host, result, dry_run)
        reporter.info(LABEL, f"{verb} static Pod manifest {host}")
    admin = fs.path("/etc/kubernetes/admin.conf")
    if plan.manifests and plan.node_name and admin.exists() and not dry_run:
        note = wait_for_mirror_pods_gone(admin, plan.node_name, plan.components, mirror_timeout)
        result.notes.append(note)
        reporter.info(LABEL, note)
    for host in plan.refused:
        result.notes.append(f"not touching {host}: it leads outside {fs.root}")
        reporter.warn(f"ledger entry {host} leads outside {fs.root}: not touched")
    if plan.etcd_data and keep_etcd_data:
        result.kept.append(plan.etcd_data)
    elif plan.etcd_data and _inside(fs, plan.etcd_data):
        data = fs.path(plan.etcd_data)
        if data.is_dir() and not data.is_symlink():
            if not dry_run:
                shutil.rmtree(data)
            result.removed.append(plan.etcd_data)
            reporter.info(LABEL, f"{verb} etcd data directory {plan.etcd_data}")
    for host in reversed(plan.files):
        _remove_file(fs, host, result, dry_run)
    reporter.info(LABEL, f"{verb} {len(plan.files)} files: certificates, keys, kubeconfigs, kubelet files")
    if not dry_run:
        # Our own state goes last but before the directory sweep, so it cannot keep /var/lib alive.
        for state in (LEDGER, LOCK):
            fs.path(state).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            fs.path(STATE_DIR).rmdir()
        for host in plan.dirs:  # deepest first: only empty directories go
            with contextlib.suppress(OSError):
                fs.path(host).rmdir()
    removed = set(result.removed)
    # Look for foreign files in every directory we created (recursively) and next to every file we
    # created (only that directory: /var/lib/kubelet holds the kubelet's own world).
    scans = [(host, True) for host in plan.dirs]
    scans += [
        (parent, False) for parent in dict.fromkeys(str(Path(f).parent) for f in plan.files + plan.manifests)
    ]
    for host, recursive in scans:
        path = fs.path(host)
        if not path.is_dir():
            continue
        for leftover in sorted(path.rglob("*") if recursive else path.iterdir()):
            rel = host_path(leftover, fs.root)
            if leftover.is_file() and rel not in removed and not rel.startswith(f"{STATE_DIR}/"):
                result.kept.append(rel)
    result.kept = sorted(dict.fromkeys(result.kept))
    for kept in result.kept:
        reporter.info(LABEL, f"Kept {kept}: not created by bootstrap")
    return result
