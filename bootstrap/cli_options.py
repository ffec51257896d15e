"""Click options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path

import click

CONFIG = click.option(
    "--config",
    "config_file",
    # No existence/type checks here: the loader refuses a missing, unreadable or directory path (exit 3).
    type=click.Path(path_type=Path),
    help="kubeadm.k8s.io/v1beta4 config file (InitConfiguration, ClusterConfiguration).",
)
ROOTFS = click.option(
    "--rootfs",
    type=click.Path(path_type=Path, file_okay=False),
    help="Resolve every host path under this directory.",
)
VERBOSE = click.option("-v", "--verbose", is_flag=True, help="Debug output and tracebacks.")
