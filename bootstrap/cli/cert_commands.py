"""``bootstrap certs``: kubeadm's expiry tables and renewal of leaf certificates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from bootstrap.cli import options

if TYPE_CHECKING:
    from datetime import timedelta
    from pathlib import Path

    from bootstrap.output import Reporter
    from bootstrap.wait.restarts import RestartReport
    from bootstrap.wait.rollout import RolloutOutcome
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


KUBELET_CONF_NOTE = (
    "kubelet.conf is not renewed here: the kubelet rotates its own client certificate (rotateCertificates)"
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
@click.option(
    "--restart/--no-restart",
    default=None,
    help="Restart the static pods that use a renewed file, one at a time, each waited healthy "
    "(default: when this node's API server is up). --no-restart: they load it at their next start.",
)
@click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    help="How long each restarted component may take to be healthy again "
    "(default: timeouts.controlPlaneComponentHealthCheck, 4m).",
)
@options.SETTLE
def renew(
    name: str,
    config_file: Path | None,
    rootfs: Path | None,
    cert_dir: str | None,
    output: str,
    verbose: bool,
    if_expiring_within: str | None,
    restart: bool | None,
    timeout: str | None,
    settle: str,
) -> None:
    """Renew one leaf certificate (a check-expiration row) or all: same subject, SANs and key type.

    Then restart exactly the static pods whose manifests use a renewed file (a kubeconfig counts for
    the component it belongs to; admin.conf and super-admin.conf restart nothing), in turn: etcd,
    kube-apiserver, kube-controller-manager, kube-scheduler. A restart that does not come back
    healthy stops there with exit 5 and its diagnosis; the rest are not touched. kubelet.conf is left
    to the kubelet, which rotates its own client certificate.
    """
    from bootstrap.host.ledger import run_lock

    options.expect_kind("RenewResult")
    window = None
    if if_expiring_within is not None:
        window = options.duration("--if-expiring-within", if_expiring_within)
    timeout_seconds = options.seconds("--timeout", timeout)
    settle_seconds = options.seconds("--settle", settle) or 0.0
    reporter = options.reporter(output, verbose, "RenewResult")
    rd = _run_data(config_file, rootfs, cert_dir, output, reporter)
    _ = rd.config  # a bad config fails (exit 3) before the lock is taken
    # One run at a time: the timer's renewal must not restart components under an upgrade or init.
    with run_lock(rd.fs, warn=reporter.warn):
        _renew_and_restart(rd, name, window, restart, settle_seconds, timeout_seconds, rootfs)


def _renew_and_restart(
    rd: RunData,
    name: str,
    window: timedelta | None,
    restart: bool | None,
    settle_seconds: float,
    timeout_seconds: float | None,
    rootfs: Path | None,
) -> None:
    from bootstrap.pki import KeySource
    from bootstrap.pki.expiration import RENEWABLE_NAMES
    from bootstrap.pki.expiration import renew as renew_certs
    from bootstrap.results import RESULT_API_VERSION as API_VERSION
    from bootstrap.results import rootfs_field

    cfg, reporter = rd.config, rd.reporter
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
    if name == "all":
        rd.reporter.info("certs", KUBELET_CONF_NOTE)
    changed = any(o.changed for o in outcomes)
    names = RENEWABLE_NAMES if name == "all" else (name,)
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "RenewResult",
        "rootfs": rootfs_field(rootfs),
        "ok": True,
        "changed": changed,
        "warnings": reporter.warnings,
        "certificates": [
            {
                "name": row,
                "message": o.message,
                "changed": o.changed,
                "files": [rd.reported_path(f) for f in o.files],
            }
            for row, o in zip(names, outcomes, strict=True)
        ],
        "kubeletConf": KUBELET_CONF_NOTE,
    }
    renewed = [rd.reported_path(f) for o in outcomes if o.changed for f in o.files]
    if timeout_seconds is None:
        timeout_seconds = cfg.init.timeouts.control_plane_component_health_check.total_seconds()
    current = options.state()
    if current is not None:  # a failed restart's document still lists what was renewed
        current.extra["certificates"] = document["certificates"]
    document["restart"] = _restart(rd, renewed, restart, settle_seconds, timeout_seconds)
    rd.reporter.result(document)


def _restart(
    rd: RunData, renewed: list[str], asked: bool | None, settle: float, timeout: float
) -> dict[str, Any]:
    """Restart what uses ``renewed`` (``asked`` None: when the control plane runs); the result
    document's ``restart`` part. A restart that fails raises exit 5, the document in its details."""
    from datetime import UTC, datetime

    from bootstrap.wait.restarts import control_plane_running, users_of

    planned = users_of(rd.manifest_dir, renewed)
    running = control_plane_running(rd.manifest_dir) if planned and asked is None else None
    part: dict[str, Any] = {
        "requested": {None: "auto", True: "restart", False: "no-restart"}[asked],
        "controlPlaneRunning": running,
        "planned": list(planned),
        "restarted": [],
        "notRestarted": [],
    }
    if not planned:
        if renewed:
            rd.reporter.info("restart", "No static pod uses a renewed file: nothing to restart")
        return part
    if asked is False or (asked is None and not running):
        why = "--no-restart" if asked is False else "this node's API server is not running"
        part["notRestarted"] = list(planned)
        rd.reporter.info(
            "restart",
            f"Not restarting ({why}): {', '.join(planned)} load the renewed certificates at their next start",
        )
        return part
    generation = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    report = _restart_in_turn(rd, planned, generation, settle, timeout)
    part["restarted"] = [_restart_entry(o, planned) for o in report.done]
    part["notRestarted"] = report.skipped
    if report.failed is None:
        return part
    failed = report.failed
    part["failed"] = _restart_entry(failed, planned)
    current = options.state()
    if current is not None:
        current.extra["restart"] = part
    from bootstrap.errors import WaitTimeoutError

    untouched = f"; not restarted: {', '.join(report.skipped)}" if report.skipped else ""
    error = WaitTimeoutError(
        f"{failed.component} did not come back healthy after its restart on the renewed certificates "
        f"(its new manifest stays in place){untouched}\n{failed.diagnosis or ''}".rstrip()
    )
    error.details = part
    raise error


def _restart_in_turn(
    rd: RunData, planned: dict[str, list[str]], generation: str, settle: float, timeout: float
) -> RestartReport:
    import socket

    from bootstrap.host.kubelet import KUBELET_FLAGS_ENV
    from bootstrap.wait.restarts import kubelet_node_name, restart_in_turn
    from bootstrap.wait.rollout import static_pod_node

    node_name = kubelet_node_name(rd.kubernetes_dir, rd.host_path(KUBELET_FLAGS_ENV), socket.gethostname())
    node = static_pod_node(
        rd.manifest_dir, rd.static_pod_path, rd.kubernetes_dir, node_name, rd.kubelet_config_path
    )
    return restart_in_turn(
        node,
        planned,
        generation,
        settle=settle,
        timeout=timeout,
        announce=lambda text: rd.reporter.info("restart", text),
        debug=rd.reporter.debug,
    )


def _restart_entry(outcome: RolloutOutcome, planned: dict[str, list[str]]) -> dict[str, Any]:
    return {**outcome.to_dict(), "uses": planned[outcome.component]}


@certs.command("install-timer")
@options.CONFIG
@options.ROOTFS
@click.option("--cert-dir", default=None, help="Where certificates are stored (passed on to the renewal).")
@click.option("--dry-run", is_flag=True, help="Print the units; write nothing.")
@click.option(
    "--executable",
    default=None,
    metavar="PATH",
    help="The bootstrap executable the service runs (default: this one).",
)
@options.OUTPUT
@options.VERBOSE
def install_timer(
    config_file: Path | None,
    rootfs: Path | None,
    cert_dir: str | None,
    dry_run: bool,
    executable: str | None,
    output: str,
    verbose: bool,
) -> None:
    """Install a systemd timer that renews certificates unattended and restarts what uses them.

    Writes kube-bootstrap-cert-renewal.service (runs `certs renew all --if-expiring-within 720h
    --restart -o json`) and kube-bootstrap-cert-renewal.timer (daily, randomized delay, persistent)
    to /etc/systemd/system, mode 0644, and enables the timer. Re-running changes nothing.
    """
    from bootstrap.host.cert_timer import activate, install, pending, units
    from bootstrap.host.fs import Rootfs
    from bootstrap.host.ledger import recorded_run
    from bootstrap.results import RESULT_API_VERSION as API_VERSION
    from bootstrap.results import rootfs_field

    options.expect_kind("InstallTimerResult")
    reporter = options.reporter(output, verbose, "InstallTimerResult")
    extra: list[str] = []
    if config_file is not None:
        extra += ["--config", str(config_file.absolute())]
    if cert_dir is not None:
        extra += ["--cert-dir", cert_dir]
    files = units(_executable(executable), extra)
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "InstallTimerResult",
        "rootfs": rootfs_field(rootfs),
        "ok": True,
        "dryRun": dry_run,
    }
    if dry_run:
        would = pending(files, Rootfs(rootfs).path)
        for host_path, change in would:
            reporter.info("dryrun", f"{'Would write' if change else 'Up to date:'} {host_path}")
        if output == "text":
            for unit in files:
                reporter.text(f"# {unit.host_path}\n{unit.text}")
        contents = {u.host_path: u.text for u in files}
        document.update(
            changed=any(c for _, c in would),  # what a real run would change
            warnings=reporter.warnings,
            units=[{"path": p, "changed": c, "content": contents.get(p)} for p, c in would],
        )
        reporter.result(document)
        return
    fs = Rootfs(rootfs)
    # Recorded in the ledger like every file we create, so `bootstrap reset` removes the units.
    with recorded_run(fs, fs, reporter.warn):
        written = install(files, fs.path)
    for host_path, changed in written:
        reporter.info("timer", f"{'Wrote' if changed else 'Up to date:'} {host_path}")
    started, message = (
        activate(any(c for _, c in written)) if rootfs is None else (False, "--rootfs: not starting it")
    )
    reporter.info("timer", message)
    document.update(
        changed=any(c for _, c in written) or started,
        warnings=reporter.warnings,
        units=[{"path": p, "changed": c} for p, c in written],
        started=started,
    )
    reporter.result(document)


def _executable(given: str | None) -> str:
    """The bootstrap the service runs: ``--executable``, else the console script running now."""
    import os
    import shutil
    import sys

    from bootstrap.errors import UsageError

    if given is not None:
        if not os.path.isabs(given):
            raise UsageError(f"--executable: {given!r} is not an absolute path")
        return given
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "bootstrap" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    found = shutil.which("bootstrap")
    if found is None:
        raise UsageError("cannot tell where the bootstrap executable is: give --executable PATH")
    return os.path.abspath(found)
