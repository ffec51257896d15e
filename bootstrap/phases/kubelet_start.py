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
    from bootstrap.host.kubelet_config import kubelet_settings

    cfg = rd.config
    settings = kubelet_settings(cfg, rd.static_pod_path)
    for warning in settings.warnings:
        rd.reporter.warn(warning)
    files = []
    for host_path, text in (
        (kubelet.KUBELET_CONFIG, yaml.safe_dump(settings.document, sort_keys=True)),
        (kubelet.KUBELET_FLAGS_ENV, kubelet.flags_env(cfg, socket.gethostname())),
    ):
        path = rd.host_path(host_path)
        # A dry run's copy is scratch, gone at exit: name the file the real run would write.
        files.append((host_path if rd.dry_run else str(path), path, text.encode(), 0o644))
    return kubelet.write_kubelet_files(files, rd.service_manager)


KUBELET_START = Phase(name="kubelet-start", help="Write kubelet settings and (re)start the kubelet", run=_run)
