"""Adapters from the ``kubeconfig`` phases to :mod:`bootstrap.pki.kubeconfig_files`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap import pki
from bootstrap.pki import kubeconfig_files
from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

_HELP = {
    "admin": "Generate a kubeconfig file for the admin to use and for kubeadm itself",
    "super-admin": "Generate a kubeconfig file for the super-admin",
    "kubelet": "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes",
    "controller-manager": "Generate a kubeconfig file for the controller manager to use",
    "scheduler": "Generate a kubeconfig file for the scheduler to use",
}


def _kubeconfig_phase(name: str) -> Phase:
    spec = kubeconfig_files.KUBECONFIG_SPECS[name]

    def run(rd: RunData) -> list[Outcome]:
        cfg = rd.config
        endpoints = kubeconfig_files.endpoints_for(
            cfg.advertise_address, cfg.bind_port, cfg.cluster.control_plane_endpoint or ""
        )
        outcome, warnings = kubeconfig_files.ensure_kubeconfig(
            spec,
            rd.kubernetes_dir,
            pki.load_ca(rd.cert_dir, "ca"),
            rd.pki_settings,
            cfg.cluster.cluster_name,
            spec.server(endpoints, cfg.kubernetes_version),
            rd.keys,
            # A kubelet.conf kubelet-finalize pointed at the kubelet's own files (read on the node).
            lambda host_path: rd.real_fs.path(host_path).read_bytes(),
        )
        for warning in warnings:
            rd.reporter.warn(warning)
        return [outcome]

    def keys_needed(rd: RunData) -> int:
        return 0 if (rd.kubernetes_dir / spec.file).exists() else 1

    return Phase(name=name, help=_HELP[name], run=run, keys_needed=keys_needed)


KUBECONFIG = Phase(
    name="kubeconfig",
    help="Generate the kubeconfig files of the control plane and the admin kubeconfig file",
    children=tuple(_kubeconfig_phase(name) for name in kubeconfig_files.KUBECONFIG_NAMES),
)
