"""Dry runs: the directory the phases write into instead of the host, and the plan shown at the end.

The directory is seeded with the files that already exist, so the plan (what each phase would write
or call, the manifests, the certificates) is what a real run would do, not a separate guess. Paths
in the plan are host paths, as a real run would write them. Key material is never shown.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.errors import UsageError
from bootstrap.host.fs import Rootfs

if TYPE_CHECKING:
    from bootstrap.output import Reporter
    from bootstrap.wait.waiter import WaitPlan
    from bootstrap.workflow.rundata import RunData
    from bootstrap.workflow.tree import PhaseReport

STOPS_HERE = "a real run stops here"
DRYRUN_DIR_ENV = "BOOTSTRAP_DRYRUN_DIR"


def _copy_private(source: str, target: str) -> str:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
        shutil.copyfileobj(data, out)
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode))
    return target


def seed(real_fs: Rootfs, host_path: str, root: Path) -> None:
    """Copy what exists at ``host_path`` into ``root`` so the dry run sees existing files as existing."""
    source = real_fs.path(host_path)
    target = Rootfs(root).path(host_path)
    if target.exists():
        return
    # Links are followed and their targets copied: a linked PKI directory must not let the dry
    # run write through to the real one. Copies are created private, then given the original mode.
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, copy_function=_copy_private)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _copy_private(str(source), str(target))


def prepare_directory(
    real_fs: Rootfs, host_paths: Iterable[str], reporter: Reporter, quiet: bool = False
) -> tuple[Path, bool]:
    """The directory a dry run writes into, seeded with ``host_paths`` from ``real_fs``, and whether
    the run must remove it at the end. ``quiet`` (for --diff) says where it is only with -v."""
    base = os.environ.get(DRYRUN_DIR_ENV)
    owned = False
    if base:
        root = Path(base)
        if root.is_dir() and any(root.iterdir()):
            # A previous run's files would pass for the host's and make the plan lie.
            raise UsageError(f"{DRYRUN_DIR_ENV}={root}: the directory must be empty or absent")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if root.is_symlink() or root.stat().st_uid != os.geteuid():
            raise UsageError(f"{DRYRUN_DIR_ENV}={root}: must be a directory of this user, not a link")
        root.chmod(0o700)  # it receives copies of the real keys
    else:
        # It holds freshly generated keys: removed at the end of the run unless the user asked
        # for a directory of their own to inspect.
        root = Path(tempfile.mkdtemp(prefix="bootstrap-init-dryrun-"))
        owned = True
    try:
        for host_path in host_paths:
            seed(real_fs, host_path, root)
    except BaseException:
        if owned:  # copies of real keys must not outlive a run that could not finish seeding
            shutil.rmtree(root, ignore_errors=True)
        raise
    if quiet:
        # The diffs are the whole answer; where the run scribbled to produce them is not news.
        reporter.debug(f"dry run: working in {root}")
    else:
        reporter.info("dryrun", f"Writing files to {root} instead of the real paths")
    return root, owned


def announce_wait(reporter: Reporter, plan: WaitPlan) -> None:
    """What a real run would wait for, said instead of waiting."""
    label = "wait-control-plane"
    if plan.kubelet_healthz is not None:
        reporter.info(label, f"Would wait for the kubelet at {plan.kubelet_healthz.url}")
    for name, endpoint in plan.endpoints.items():
        reporter.info(
            label, f"Would wait for mirror pod kube-system/{name}-{plan.node_name} and {endpoint.url}"
        )


def summary(rd: RunData, reports: list[PhaseReport]) -> dict[str, Any]:
    from bootstrap.cluster.apply import DryRunApplier
    from bootstrap.pki.expiration import check_expiration, to_dict

    plan = []
    for r in reports:
        step: dict[str, Any] = {
            "phase": r.path,
            "status": r.status,
            "wouldChange": r.changed,
            "files": r.files,
        }
        if r.status == "would-fail":
            step["wouldFail"] = (r.details or {}).get("wouldFail")
        plan.append(step)
    manifests = {}
    directory = rd.manifest_dir
    if directory.is_dir():
        for path in sorted(directory.glob("*.yaml")):
            manifests[path.name] = path.read_text()
    certificates: dict[str, Any] = {}
    if (rd.cert_dir / "ca.crt").exists():
        certificates = to_dict(check_expiration(rd.cert_dir, rd.kubernetes_dir, rd.started, rd.fs.root))
    applier = rd.__dict__.get("applier")
    actions = list(applier.actions) if isinstance(applier, DryRunApplier) else []
    data: dict[str, Any] = {}
    if not rd.options.diff:  # with --diff the directory is an implementation detail
        data["directory"] = str(rd.dry_run_dir)
    stand_in = rd.dry_run_stand_in()
    if stand_in is not None:
        data["standIn"] = stand_in
    return {**data, "plan": plan, "manifests": manifests, "certificates": certificates, "apiActions": actions}


def _state(step: dict[str, Any]) -> str:
    if step["status"] == "would-fail":
        return "would fail"
    if step["status"] == "skipped":
        return "skipped"
    return "would change" if step["wouldChange"] else "unchanged"


def render(data: dict[str, Any]) -> str:
    lines = []
    if "directory" in data:
        lines.append(
            f"Dry run: files were written to {data['directory']} instead of the real paths "
            f"(removed at exit unless BOOTSTRAP_DRYRUN_DIR names the directory to keep)."
        )
    # What would stop a real run comes first: everything after it would not happen.
    lines += [f"{s['phase']}: {s['wouldFail']} — {STOPS_HERE}" for s in data["plan"] if s.get("wouldFail")]
    if "standIn" in data:
        lines.append(
            f"Planned against a stand-in ({', '.join(data['standIn']['replaces'])}) made for this dry run: "
            f"{data['standIn']['reason']}"
        )
    lines += ["", "Plan:"]
    for step in data["plan"]:
        lines.append(f"  {step['phase']:<40} {_state(step)}")
        lines += [f"      writes {f}" for f in step["files"]]
    if data["apiActions"]:
        lines += ["", "API actions:"] + [f"  {a}" for a in data["apiActions"]]
    if data["certificates"]:
        lines += ["", "Certificates:"]
        for row in data["certificates"].get("certificates", []) + data["certificates"].get(
            "certificateAuthorities", []
        ):
            expires = f"expires {row['expirationDate']}" if row.get("expirationDate") else "missing"
            ca = row.get("certificateAuthority")
            lines.append(
                f"  {row['name']:<28} {expires:<30} {f'signed by {ca}' if ca else 'certificate authority'}"
            )
    for name, text in data["manifests"].items():
        lines += ["", f"--- {name}", text.rstrip()]
    return "\n".join(lines)
