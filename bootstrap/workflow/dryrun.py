"""The plan a dry run shows: what each phase would write or call, the manifests, the certificates.

Everything comes from the dry-run directory the phases wrote into, so the plan is what a real run
would do, not a separate guess. Paths are host paths, as a real run would write them. Key material
is never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData
    from bootstrap.workflow.tree import PhaseReport

STOPS_HERE = "a real run stops here"


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
