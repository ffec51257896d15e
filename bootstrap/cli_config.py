"""``bootstrap config``: print the defaulted config, validate a file. Touches no file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bootstrap.output import Reporter


@click.group()
def config() -> None:
    """Print or validate kubeadm-style configuration."""


@config.group("print")
def print_() -> None:
    """Print configuration."""


@print_.command("init-defaults")
@click.option("--node-name", default=None, help="Node name to print (default: detected hostname).")
@click.option("--advertise-address", default=None, help="Advertise address to print (default: detected).")
def init_defaults(node_name: str | None, advertise_address: str | None) -> None:
    """Print the fully defaulted InitConfiguration and ClusterConfiguration (a valid input file)."""
    from bootstrap.config import default_config, dump_config

    click.echo(dump_config(default_config(node_name, advertise_address)), nl=False)


@config.command()
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The file to validate.",
)
def validate(config_file: Path, **_: Any) -> None:
    """Validate a config file: every problem is reported, each naming its field. Writes nothing."""
    from bootstrap.config import load_config

    reporter = Reporter()
    cfg = load_config(config_file, {})
    for warning in cfg.warnings:
        reporter.warn(warning)
    click.echo(f"{config_file}: valid (kubernetesVersion {cfg.kubernetes_version})", err=True)
