"""Adapter for the ``kubelet-start`` phase: write the kubelet's config and flags, then restart it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData


def _run(rd: RunData) -> list[Outcome]:
    import socket

    import yaml

    from bootstrap.host import kubelet
    from bootstrap.host.fs import write_atomic
    from bootstrap.host.kubelet_config import kubelet_settings

    cfg = rd.config
    settings = kubelet_settings(cfg, rd.static_pod_path)
    for warning in settings.warnings:
        rd.reporter.warn(warning)
    outcomes = []
    for host_path, text in (
        (kubelet.KUBELET_CONFIG, yaml.safe_dump(settings.document, sort_keys=True)),
        (kubelet.KUBELET_FLAGS_ENV, kubelet.flags_env(cfg, socket.gethostname())),
    ):
        path = rd.host_path(host_path)
        # A dry run's copy is scratch, gone at exit: name the file the real run would write.
        shown = host_path if rd.dry_run else path
        if write_atomic(path, text.encode(), 0o644):
            outcomes.append(Outcome(True, f'Writing kubelet file "{shown}"', [path]))
        else:
            outcomes.append(Outcome(False, f'Kubelet file "{shown}" is up to date'))
    touched, message = rd.service_manager.restart_kubelet(any(o.changed for o in outcomes))
    outcomes.append(Outcome(touched, message))
    return outcomes


KUBELET_START = Phase(name="kubelet-start", help="Write kubelet settings and (re)start the kubelet", run=_run)
