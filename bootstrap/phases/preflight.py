"""Adapter for the ``preflight`` phase: turns the config and the (root) filesystem into named checks.

Every host path is looked up where a real run would touch it (``--rootfs``, never the dry-run
copy); ``/proc`` is always this machine's. Ports come from the manifests this run would write, so a
user's ``extraArgs`` are respected; a port or file that our own running control plane already holds
(a re-run) is no error.
"""

from __future__ import annotations

import posixpath
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.host import preflight_checks
    from bootstrap.workflow.rundata import RunData


def _manifest(rd: RunData, component: str) -> Path:
    return rd.real_fs.path(posixpath.join(rd.static_pod_path, f"{component}.yaml"))


def _port_checks(rd: RunData) -> list[preflight_checks.Check]:
    from bootstrap.components.render import components_for, pod_inputs
    from bootstrap.host import preflight_checks
    from bootstrap.workflow.rundata import host_view

    cfg, view = rd.config, host_view(rd)
    # The flags this run would write, so a user's extraArgs are respected.
    flags = {c: pod_inputs(c, cfg, view).flags for c in components_for(cfg)}
    return preflight_checks.port_checks(
        flags, partial(_manifest, rd), cfg.kubelet, rd.kubelet_config_path.exists
    )


def _file_checks(rd: RunData) -> list[preflight_checks.Check]:
    from bootstrap.components.render import components_for
    from bootstrap.host import preflight_checks

    return [
        preflight_checks.Check(
            preflight_checks.path_check_name(
                "FileAvailable", posixpath.join(rd.static_pod_path, f"{c}.yaml")
            ),
            partial(preflight_checks.file_available, c, _manifest(rd, c)),
        )
        for c in components_for(rd.config)
    ]


def _etcd_data_dir_check(rd: RunData) -> list[preflight_checks.Check]:
    from bootstrap.host import preflight_checks

    local = rd.config.cluster.etcd.local
    if rd.config.external_etcd or local is None:
        return []
    owned = partial(preflight_checks.etcd_owns_data_dir, _manifest(rd, "etcd"), local.data_dir)
    return [
        preflight_checks.Check(
            preflight_checks.path_check_name("DirAvailable", local.data_dir),
            partial(preflight_checks.dir_available, rd.real_fs.path(local.data_dir), owned),
        )
    ]


def checks_for(rd: RunData) -> list[preflight_checks.Check]:
    from bootstrap.host import preflight_checks
    from bootstrap.workflow.checking import kubelet_binary_check

    cfg = rd.config
    return [
        preflight_checks.Check("IsPrivilegedUser", preflight_checks.privileged_user),
        preflight_checks.Check("NumCPU", preflight_checks.num_cpu),
        preflight_checks.Check("Mem", preflight_checks.memory),
        preflight_checks.Check(
            "Swap", partial(preflight_checks.swap, preflight_checks.fails_on_swap(cfg.kubelet))
        ),
        kubelet_binary_check(rd),
        preflight_checks.Check(
            "CRI",
            partial(preflight_checks.cri_socket, cfg.init.node_registration.cri_socket, rd.real_fs.path),
        ),
        *_port_checks(rd),
        *_file_checks(rd),
        *_etcd_data_dir_check(rd),
    ]


def _run(rd: RunData) -> list[Outcome]:
    """Run every check. A real run stops on the errors; a dry run shows what would fail, names the
    checks in its plan, and goes on."""
    from bootstrap.workflow.checking import run_checks

    return run_checks(rd, checks_for(rd))


PREFLIGHT = Phase(name="preflight", help="Run pre-flight checks", run=_run)
