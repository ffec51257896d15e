"""The plan a dry run shows: what each phase would write or call, the manifests, the certificates.

Everything comes from the dry-run directory the phases wrote into, so the plan is what a real run
would do, not a separate guess. Key material is never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrap.rundata import RunData
    from bootstrap.workflow import PhaseReport


def summary(rd: RunData, reports: list[PhaseReport]) -> dict[str, Any]:
    from bootstrap.apply import DryRunApplier
    from bootstrap.pki.expiration import check_expiration, to_dict

    plan = [
        {
            "phase": r.path,
            "status": r.status,
            "wouldChange": r.changed,
            "files": [_host(rd, f) for f in r.files],
        }
        for r in reports
    ]
    manifests = {}
    directory = rd.manifest_dir
    if directory.is_dir():
        for path in sorted(directory.glob("*.yaml")):
            manifests[path.name] = path.read_text()
    certificates: dict[str, Any] = {}
    if (rd.cert_dir / "ca.crt").exists():
        certificates = to_dict(check_expiration(rd.cert_dir, rd.kubernetes_dir, rd.started))
    applier = rd.__dict__.get("applier")
    actions = list(applier.actions) if isinstance(applier, DryRunApplier) else []
    return {
        "directory": str(rd.dry_run_dir),
        "plan": plan,
        "manifests": manifests,
        "certificates": certificates,
        "apiActions": actions,
    }


def _host(rd: RunData, real: str) -> str:
    root = str(rd.dry_run_dir)
    return real[len(root) :] if real.startswith(root) else real


def render(data: dict[str, Any]) -> str:
    lines = [
        f"Dry run: files were written to {data['directory']} instead of the real paths "
        f"(removed at exit unless BOOTSTRAP_DRYRUN_DIR names the directory to keep).",
        "",
        "Plan:",
    ]
    for step in data["plan"]:
        state = (
            "skipped"
            if step["status"] == "skipped"
            else ("would change" if step["wouldChange"] else "unchanged")
        )
        lines.append(f"  {step['phase']:<40} {state}")
        lines += [f"      writes {f}" for f in step["files"]]
    if data["apiActions"]:
        lines += ["", "API actions:"] + [f"  {a}" for a in data["apiActions"]]
    if data["certificates"]:
        lines += ["", "Certificates:"]
        for row in data["certificates"].get("certificates", []) + data["certificates"].get(
            "certificateAuthorities", []
        ):
            lines.append(
                f"  {row['name']:<28} expires {row.get('expirationDate')}  "
                f"CA {row.get('certificateAuthority', '-')}"
            )
    for name, text in data["manifests"].items():
        lines += ["", f"--- {name}", text.rstrip()]
    return "\n".join(lines)
