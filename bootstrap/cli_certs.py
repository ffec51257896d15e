"""``bootstrap certs``: kubeadm's expiry tables and renewal of leaf certificates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bootstrap import cli_options as options
from bootstrap.output import Reporter

if TYPE_CHECKING:
    from bootstrap.rundata import RunData


def _options(func: Any) -> Any:
    for decorator in reversed(
        [
            options.CONFIG,
            options.ROOTFS,
            click.option(
                "--cert-dir", default=None, help="Where certificates are stored (/etc/kubernetes/pki)."
            ),
            options.VERBOSE,
        ]
    ):
        func = decorator(func)
    return func


def _run_data(config_file: Path | None, rootfs: Path | None, cert_dir: str | None, output: str) -> RunData:
    from bootstrap.rundata import RunData, RunOptions

    # Node identity does not matter for reading or renewing: fixed values avoid host detection.
    overrides: dict[str, object] = {
        "cert-dir": cert_dir,
        "node-name": "localhost",
        "advertise-address": "127.0.0.1",
    }
    if config_file is not None:
        overrides = {"cert-dir": cert_dir}
    options = RunOptions(config_file=config_file, overrides=overrides, rootfs=rootfs, output=output)
    return RunData(options, Reporter("json" if output == "json" else "text"))


@click.group()
def certs() -> None:
    """Check and renew certificates."""


@certs.command("check-expiration")
@_options
@click.option(
    "-o", "--output", type=click.Choice(("text", "json", "yaml")), default="text", show_default=True
)
def check_expiration(
    config_file: Path | None, rootfs: Path | None, cert_dir: str | None, verbose: bool, output: str
) -> None:
    """Print when each certificate (kubeconfig-embedded ones included) and each CA expires."""
    from bootstrap.pki.expiration import check_expiration as check
    from bootstrap.pki.expiration import document, render_text

    rd = _run_data(config_file, rootfs, cert_dir, output)
    report = check(rd.cert_dir, rd.kubernetes_dir, rd.started, rd.fs.root)
    if output == "json":
        click.echo(json.dumps(document(report), indent=2))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(document(report), sort_keys=False), nl=False)
    else:
        click.echo(render_text(report))


@certs.command()
@click.argument("name")
@_options
@click.option(
    "--if-expiring-within",
    default=None,
    metavar="DURATION",
    help="Renew only certificates expiring within this Go duration (e.g. 720h), for timers.",
)
@click.option("-o", "--output", type=click.Choice(("text", "json")), default="text", show_default=True)
def renew(
    name: str,
    config_file: Path | None,
    rootfs: Path | None,
    cert_dir: str | None,
    verbose: bool,
    if_expiring_within: str | None,
    output: str,
) -> None:
    """Renew one leaf certificate (a check-expiration row) or all: same subject, SANs and key type."""
    from bootstrap.config import parse_go_duration
    from bootstrap.errors import UsageError
    from bootstrap.pki import KeySource
    from bootstrap.pki.expiration import renew as renew_certs
    from bootstrap.results import rootfs_field

    window = None
    if if_expiring_within is not None:
        try:
            window = parse_go_duration(if_expiring_within)
        except ValueError as exc:
            raise UsageError(
                f"--if-expiring-within: {if_expiring_within!r} is not a duration ({exc})"
            ) from exc
    rd = _run_data(config_file, rootfs, cert_dir, output)
    cfg = rd.config
    with KeySource(cfg.cluster.encryption_algorithm) as keys:
        outcomes = renew_certs(
            name,
            rd.cert_dir,
            rd.kubernetes_dir,
            rd.started,
            cfg.cluster.certificate_validity_period,
            keys,
            window,
        )
    for outcome in outcomes:
        rd.reporter.info("certs", outcome.message)
    changed = any(o.changed for o in outcomes)
    if changed:
        rd.reporter.info(
            "certs",
            "Restart kube-apiserver, kube-controller-manager, kube-scheduler and etcd "
            "so that they load the renewed certificates",
        )
    rd.reporter.result(
        {
            "apiVersion": "bootstrap.kube-bootstrap.io/v1alpha1",
            "kind": "RenewResult",
            "rootfs": rootfs_field(rootfs),
            "ok": True,
            "changed": changed,
            "certificates": [
                {"message": o.message, "changed": o.changed, "files": [rd.reported_path(f) for f in o.files]}
                for o in outcomes
            ],
        }
    )
