"""``bootstrap certs``: kubeadm's expiry tables and renewal of leaf certificates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from bootstrap.cli import options

if TYPE_CHECKING:
    from pathlib import Path

    from bootstrap.output import Reporter
    from bootstrap.workflow.rundata import RunData


def _options(func: Any) -> Any:
    for decorator in reversed(
        [
            options.CONFIG,
            options.ROOTFS,
            click.option(
                "--cert-dir", default=None, help="Where certificates are stored (/etc/kubernetes/pki)."
            ),
            options.OUTPUT,
            options.VERBOSE,
        ]
    ):
        func = decorator(func)
    return func


def _run_data(
    config_file: Path | None, rootfs: Path | None, cert_dir: str | None, output: str, reporter: Reporter
) -> RunData:
    from bootstrap.workflow.rundata import RunData, RunOptions

    # Node identity does not matter for reading or renewing: fixed values avoid host detection.
    overrides: dict[str, object] = {
        "cert-dir": cert_dir,
        "node-name": "localhost",
        "apiserver-advertise-address": "127.0.0.1",
    }
    if config_file is not None:
        overrides = {"cert-dir": cert_dir}
    run = RunOptions(config_file=config_file, overrides=overrides, rootfs=rootfs, output=output)
    return RunData(run, reporter)


@click.group(cls=options.SuggestingGroup)
@options.global_options
def certs(output: str, verbose: bool) -> None:
    """Check and renew certificates."""


@certs.command("check-expiration")
@_options
def check_expiration(
    config_file: Path | None, rootfs: Path | None, cert_dir: str | None, output: str, verbose: bool
) -> None:
    """Print when each certificate (kubeconfig-embedded ones included) and each CA expires."""
    from bootstrap.pki.expiration import check_expiration as check
    from bootstrap.pki.expiration import document, render_text

    reporter = options.reporter(output, verbose, "CertificateExpiration")
    rd = _run_data(config_file, rootfs, cert_dir, output, reporter)
    report = check(rd.cert_dir, rd.kubernetes_dir, rd.started, rd.fs.root)
    if output == "text":
        click.echo(render_text(report))
    document_ = document(report)
    reporter.result(
        {
            "apiVersion": document_.pop("apiVersion"),
            "kind": document_.pop("kind"),
            "rootfs": document_.pop("rootfs"),
            "ok": True,
            "changed": False,
            "warnings": reporter.warnings,
            **document_,
        }
    )


def _renewable(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse an unknown name before anything is read, naming the closest valid one (exit 2)."""
    from bootstrap.errors import UsageError
    from bootstrap.pki.expiration import RENEWABLE_NAMES

    names = (*RENEWABLE_NAMES, "all")
    if value in names:
        return value
    if value in ("ca", "etcd-ca", "front-proxy-ca", "sa"):
        raise UsageError(
            f'"{value}" cannot be renewed: CAs and the service-account key are never renewed', ctx
        )
    raise UsageError(
        f"unknown certificate {value!r}{options.did_you_mean(value, names)}; valid: {', '.join(names)}", ctx
    )


@certs.command()
@click.argument("name", callback=_renewable)
@_options
@click.option(
    "--if-expiring-within",
    default=None,
    metavar="DURATION",
    help="Renew only certificates expiring within this Go duration (e.g. 720h), for timers.",
)
def renew(
    name: str,
    config_file: Path | None,
    rootfs: Path | None,
    cert_dir: str | None,
    output: str,
    verbose: bool,
    if_expiring_within: str | None,
) -> None:
    """Renew one leaf certificate (a check-expiration row) or all: same subject, SANs and key type."""
    from bootstrap.pki import KeySource
    from bootstrap.pki.expiration import renew as renew_certs
    from bootstrap.results import RESULT_API_VERSION as API_VERSION
    from bootstrap.results import rootfs_field

    options.expect_kind("RenewResult")
    window = None
    if if_expiring_within is not None:
        window = options.duration("--if-expiring-within", if_expiring_within)
    reporter = options.reporter(output, verbose, "RenewResult")
    rd = _run_data(config_file, rootfs, cert_dir, output, reporter)
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
            "apiVersion": API_VERSION,
            "kind": "RenewResult",
            "rootfs": rootfs_field(rootfs),
            "ok": True,
            "changed": changed,
            "warnings": reporter.warnings,
            "certificates": [
                {"message": o.message, "changed": o.changed, "files": [rd.reported_path(f) for f in o.files]}
                for o in outcomes
            ],
        }
    )
