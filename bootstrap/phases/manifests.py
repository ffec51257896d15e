"""Adapters for the ``manifests`` phases: render, guard against strays, write (or diff)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.components import COMPONENTS
from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

KUBERNETES_DIR = "/etc/kubernetes"
_HELP = {
    "etcd": "Generate the static Pod manifest file for a local, single-node etcd instance",
    "kube-apiserver": "Generate the kube-apiserver static Pod manifest",
    "kube-controller-manager": "Generate the kube-controller-manager static Pod manifest",
    "kube-scheduler": "Generate the kube-scheduler static Pod manifest",
}


def _guard_strays(rd: RunData, directory: Path) -> list[Outcome]:
    from bootstrap.components import strays

    found = strays.find_strays(directory, {f"{c}.yaml" for c in COMPONENTS}, COMPONENTS)
    if not found:
        return []
    if not rd.options.quarantine_strays:
        raise strays.refuse(found)
    stamp = rd.started.strftime("%Y%m%dT%H%M%SZ")
    target = rd.host_path(f"{KUBERNETES_DIR}/tmp/quarantine-{stamp}")
    moved = strays.quarantine(found, target)
    return [
        Outcome(True, f"Quarantined {s.path.name} ({s.reason}) to {m}", [m])
        for s, m in zip(found, moved, strict=True)
    ]


def _run(component: str, rd: RunData) -> list[Outcome]:
    from bootstrap.components.annotations import keep_generation
    from bootstrap.components.references import check_files, manifest_files
    from bootstrap.components.render import render
    from bootstrap.components.write import unified_diff, write_manifest
    from bootstrap.wait.status import Freshness
    from bootstrap.workflow.rundata import host_view

    directory = rd.manifest_dir
    # A restart by `certs renew` annotated the manifest on disk; re-rendering keeps that.
    manifest = keep_generation(directory / f"{component}.yaml", render(component, rd.config, host_view(rd)))
    if rd.options.diff:
        label = f"{rd.options.output_dir or rd.static_pod_path}/{manifest.filename}"
        diff = unified_diff(directory / manifest.filename, manifest.text, label)
        if diff and rd.options.output == "text":
            rd.reporter.text(diff.rstrip("\n"))
        message = f'{"Would change" if diff else "No change to"} "{manifest.filename}"'
        return [Outcome(bool(diff), message, [], {"diff": diff} if diff else None)]
    outcomes = _guard_strays(rd, directory)
    if component == "etcd":
        # etcd writes its data directory, not us, but reset must find it even after the manifest is gone.
        from bootstrap.components.flags import flag_value
        from bootstrap.host.fs import announce

        data_dir = flag_value(manifest.flags, "data-dir")
        path = rd.host_path(data_dir) if data_dir else None
        if path is not None and (not path.exists() or not any(path.iterdir())):  # never claim existing data
            announce(path, "etcd-data")
    target = directory / manifest.filename
    if not target.exists() or target.read_text() != manifest.text:
        before = rd.observe_mirror_hash(component)
        written = write_manifest(directory, manifest)
        rd.manifest_writes[component] = Freshness(before, datetime.now(UTC))
    else:
        written = write_manifest(directory, manifest)
    outcomes.append(written)
    cert_dir = rd.config.cert_dir
    problems, missing = check_files(
        manifest_files(manifest.inputs),
        rd.host_path,
        lambda p: p.startswith(f"{cert_dir}/") or p.startswith(KUBERNETES_DIR),
    )
    for problem in problems:
        rd.reporter.warn(problem)
    for host in missing:
        rd.missing_references.setdefault(host, []).append(component)
    if missing:
        rd.after_group("manifests", lambda: _warn_missing(rd))
    return outcomes


def _warn_missing(rd: RunData) -> None:
    """One warning for every file the manifests refer to that is not there (the PKI and the
    kubeconfigs, before their phases ran, or on another host with --output-dir)."""
    missing, rd.missing_references = rd.missing_references, {}
    for path, components in missing.items():
        rd.reporter.debug(f"{path} is referenced by {', '.join(components)} but does not exist")
    shown = list(missing)[:3]
    more = f" and {len(missing) - len(shown)} more" if len(missing) > len(shown) else ""
    count = f"{len(missing)} file{'s' if len(missing) != 1 else ''}"
    where = f"the manifests in {rd.options.output_dir}" if rd.options.output_dir else "the manifests"
    rd.reporter.warn(
        f"{where} refer to {count} that do not exist on this host yet ({', '.join(shown)}{more}; "
        '-v lists them); "bootstrap phase certs" and "bootstrap phase kubeconfig" create them'
    )


def _manifest_phase(component: str) -> Phase:
    def skip_if(rd: RunData) -> str | None:
        return "external etcd: no local etcd static pod" if rd.config.external_etcd else None

    return Phase(
        name=component,
        help=_HELP[component],
        run=lambda rd: _run(component, rd),
        skip_if=skip_if if component == "etcd" else None,
    )


MANIFESTS = Phase(
    name="manifests",
    help="Generate the static Pod manifests of the control plane into the kubelet's watched directory",
    children=tuple(_manifest_phase(c) for c in COMPONENTS),
)
