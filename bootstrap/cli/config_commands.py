"""``bootstrap config``: print the defaulted config, validate a file. Touches no file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bootstrap.cli import options
from bootstrap.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

# kubeadm's placeholders for `config print init-defaults`: the output is an example, not this host.
PLACEHOLDER_NODE_NAME = "node"
PLACEHOLDER_ADVERTISE_ADDRESS = "1.2.3.4"
PLACEHOLDER_TOKEN = "abcdef.0123456789abcdef"
# The init loader's message for a file of the other command: validate then tries join's loader.
NOT_AN_INIT_FILE = "no InitConfiguration or ClusterConfiguration kind was found"


@click.group(cls=options.SuggestingGroup)
@options.global_options
def config(output: str, verbose: bool) -> None:
    """Print or validate kubeadm-style configuration."""


@config.group("print", cls=options.SuggestingGroup)
@options.global_options
def print_(output: str, verbose: bool) -> None:
    """Print configuration."""


@print_.command("init-defaults")
@click.option("--node-name", default=None, help="Node name to print (default: node, or this host's).")
@click.option(
    "--apiserver-advertise-address",
    "--advertise-address",
    "advertise_address",
    default=None,
    help="Advertise address to print (default: 1.2.3.4, or this host's).",
)
@click.option(
    "--from-host",
    is_flag=True,
    help="Use this host's name and default-route address, and no token, instead of kubeadm's placeholders.",
)
@options.OUTPUT
@options.VERBOSE
def init_defaults(
    node_name: str | None, advertise_address: str | None, from_host: bool, output: str, verbose: bool
) -> None:
    """Print the fully defaulted InitConfiguration and ClusterConfiguration (a valid input file).

    As kubeadm, the node name, advertise address and token are placeholders unless --from-host.
    """
    import yaml

    from bootstrap.config import dump_config, load_config
    from bootstrap.results import RESULT_API_VERSION as API_VERSION

    reporter = options.reporter(output, verbose, "ConfigPrintResult")
    overrides: dict[str, object] = {"node-name": node_name, "apiserver-advertise-address": advertise_address}
    if not from_host:
        overrides = {
            "node-name": node_name or PLACEHOLDER_NODE_NAME,
            "apiserver-advertise-address": advertise_address or PLACEHOLDER_ADVERTISE_ADDRESS,
            "token": PLACEHOLDER_TOKEN,
        }
    text = dump_config(load_config(None, overrides))
    if not from_host:
        reporter.warn(
            f"bootstrapTokens[0].token is kubeadm's well-known placeholder {PLACEHOLDER_TOKEN}: set your "
            "own, or delete the line to have one generated, before using this file"
        )
    if output == "text":
        click.echo(text, nl=False)
    reporter.result(
        {
            "apiVersion": API_VERSION,
            "kind": "ConfigPrintResult",
            "ok": True,
            "changed": False,
            "warnings": reporter.warnings,
            "documents": list(yaml.safe_load_all(text)),
        }
    )


@config.command()
@click.option(
    "--config",
    "config_file",
    required=True,
    type=options.PathParam(),
    help="The file to validate.",
)
@options.OUTPUT
@options.VERBOSE
def validate(config_file: Path, output: str, verbose: bool) -> None:
    """Validate a config file: every problem is reported, each naming its field. Writes nothing."""
    from bootstrap.config import load_config
    from bootstrap.results import RESULT_API_VERSION as API_VERSION

    reporter = options.reporter(output, verbose, "ConfigValidateResult")
    try:
        cfg = load_config(config_file, {})
    except ConfigError as exc:
        if not any(p.endswith(NOT_AN_INIT_FILE) for p in exc.problems):
            raise
        # A JoinConfiguration file (e.g. what the Ansible role keeps for a joining host) is checked as
        # `join` reads it.
        warnings = _validate_join_file(config_file)
        kubernetes_version = None
        summary = "JoinConfiguration"
    else:
        warnings, kubernetes_version = cfg.warnings, cfg.kubernetes_version
        summary = f"kubernetesVersion {kubernetes_version}"
    for warning in warnings:
        reporter.warn(warning)
    click.echo(f"{config_file}: valid ({summary})", err=True)
    reporter.result(
        {
            "apiVersion": API_VERSION,
            "kind": "ConfigValidateResult",
            "ok": True,
            "changed": False,
            "file": str(config_file),
            "kubernetesVersion": kubernetes_version,
            "warnings": reporter.warnings,
        }
    )


def _validate_join_file(config_file: Path) -> list[str]:
    """The warnings of a valid JoinConfiguration file; a ConfigError naming every problem otherwise.
    Discovery may be left to join's flags (the endpoint and --token), which a file alone cannot show."""
    from bootstrap.config.join import load_join_config

    return list(load_join_config(config_file, discovery_from_flags=True).warnings)


@config.group("images", cls=options.SuggestingGroup)
@options.global_options
def images(output: str, verbose: bool) -> None:
    """The images a cluster runs (for pre-pulling, or mirroring into an air-gapped registry)."""


@images.command("list")
@click.option(
    "--config",
    "config_file",
    default=None,
    type=options.PathParam(),
    help="Config file whose imageRepository, kubernetesVersion, etcd and dns settings apply.",
)
@click.option(
    "--kubernetes-version",
    default=None,
    metavar="VERSION",
    help="Kubernetes version to list the images of (wins over the config's kubernetesVersion).",
)
@options.OUTPUT
@options.VERBOSE
def images_list(config_file: Path | None, kubernetes_version: str | None, output: str, verbose: bool) -> None:
    """Print every image the cluster will run: control plane, kube-proxy, CoreDNS, pause and etcd.

    As kubeadm: a disabled addon's image, and etcd's with external etcd, are left out.
    """
    from bootstrap.components.images import cluster_images
    from bootstrap.config import load_config
    from bootstrap.results import RESULT_API_VERSION as API_VERSION

    reporter = options.reporter(output, verbose, "ConfigImagesListResult")
    # The node's name and address do not change an image: placeholders spare the host detection.
    overrides: dict[str, object] = {
        "kubernetes-version": kubernetes_version,
        "node-name": PLACEHOLDER_NODE_NAME,
        "apiserver-advertise-address": PLACEHOLDER_ADVERTISE_ADDRESS,
    }
    cfg = load_config(config_file, overrides)
    for warning in cfg.warnings:
        reporter.warn(warning)
    listed = cluster_images(cfg)
    if output == "text":
        click.echo("\n".join(image for _, image in listed))
    reporter.result(
        {
            "apiVersion": API_VERSION,
            "kind": "ConfigImagesListResult",
            "ok": True,
            "changed": False,
            "kubernetesVersion": cfg.kubernetes_version,
            "images": [image for _, image in listed],
            "components": [{"name": name, "image": image} for name, image in listed],
            "warnings": reporter.warnings,
        }
    )
