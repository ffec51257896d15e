"""``bootstrap upgrade plan|apply``: upgrade or reconfigure this node's control plane.

The logic lives in :mod:`bootstrap.upgrade`; this module parses, asks for confirmation and renders
the result. Exit codes: 0 done (or nothing to do), 2 usage (also: no terminal to confirm on and no
``--yes``), 3 invalid configuration, 4 a version change the skew policy forbids (the rule is named),
5 a component did not come back healthy (it was rolled back).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import click

from bootstrap.cli import options

if TYPE_CHECKING:
    from pathlib import Path

    from bootstrap.output import Reporter
    from bootstrap.upgrade.plan import UpgradePlan
    from bootstrap.upgrade.prepare import Prepared, UpgradeRequest


@click.group(cls=options.SuggestingGroup)
@options.global_options
def upgrade(output: str, verbose: bool) -> None:
    """Upgrade the control plane to another version, or reconfigure it, one component at a time."""


_VERSION = re.compile(r"v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?|stable|latest|stable-\d+|stable-\d+\.\d+")


def _version(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse what is not a version (or one of kubeadm's labels) before anything is read (exit 2)."""
    if value is not None and not _VERSION.fullmatch(value):
        from bootstrap.errors import UsageError

        raise UsageError(
            f"VERSION {value!r} is not a version (e.g. v1.34.2) or a label (stable, stable-1.34)", ctx
        )
    return value


def _common(func: Any) -> Any:
    for decorator in reversed(
        [
            click.argument("version", required=False, callback=_version),
            options.CONFIG,
            options.ROOTFS,
            options.OUTPUT,
            options.VERBOSE,
        ]
    ):
        func = decorator(func)
    return func


def _request(version: str | None, params: dict[str, Any]) -> UpgradeRequest:
    from bootstrap.upgrade.prepare import DEFAULT_TIMEOUT, UpgradeRequest

    timeout = options.seconds("--timeout", params.get("timeout"))
    settle = options.seconds("--settle", params.get("settle"))
    return UpgradeRequest(
        version=version,
        config_file=params.get("config_file"),
        rootfs=params.get("rootfs"),
        dry_run=bool(params.get("dry_run")) or bool(params.get("diff")),
        diff=bool(params.get("diff")),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        settle=settle if settle is not None else 5.0,
        certificate_renewal=params.get("certificate_renewal", True) is not False,
        output=params.get("output") or "text",
        verbose=bool(params.get("verbose")),
    )


def _document(kind: str, prepared: Prepared, reporter: Reporter, **fields: Any) -> dict[str, Any]:
    from bootstrap.results import RESULT_API_VERSION, rootfs_field

    return {
        "apiVersion": RESULT_API_VERSION,
        "kind": kind,
        "rootfs": rootfs_field(prepared.rd.options.rootfs),
        "ok": True,
        **fields,
        "warnings": reporter.warnings,
        "plan": prepared.plan.to_dict(),
    }


@upgrade.command("plan")
@_common
def plan_command(
    version: str | None, config_file: Path | None, rootfs: Path | None, output: str, verbose: bool
) -> None:
    """Show what `upgrade apply [VERSION]` would change: images, flags, volumes, certificate SANs.

    Without VERSION the version running now is kept (a reconfiguration with --config).
    """
    from bootstrap.upgrade.prepare import prepare

    options.expect_kind("UpgradePlan")
    reporter = options.reporter(output, verbose, "UpgradePlan")
    request = _request(version, {"config_file": config_file, "rootfs": rootfs, "output": output})
    prepared = prepare(request, reporter)
    try:
        if output == "text":
            reporter.text(prepared.plan.text())
        reporter.result(_document("UpgradePlan", prepared, reporter, changed=False))
    finally:
        prepared.rd.close()


def _confirmation(yes: bool, reporter: Reporter) -> Any:
    def confirm(plan: UpgradePlan) -> None:
        for line in plan.text().splitlines():
            reporter.info("upgrade/plan", line)
        if yes:
            return
        from bootstrap.errors import UsageError

        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask for confirmation on: pass --yes (-y) to apply the plan")
        click.confirm("Apply this plan?", abort=True, err=True)

    return confirm


@upgrade.command("apply")
@_common
@click.option("-y", "--yes", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show the plan and what would be written; write nothing.")
@click.option("--diff", is_flag=True, help="Print a unified diff per manifest; write nothing.")
@click.option(
    "--timeout",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="How long each component may take to come back healthy (timeouts.upgradeManifests).",
)
@options.SETTLE
@click.option(
    "--certificate-renewal",
    type=click.BOOL,
    default=True,
    is_flag=False,
    flag_value=True,
    show_default=True,
    metavar="[=BOOL]",
    help="Renew the control-plane certificates during a version upgrade (--certificate-renewal=false: keep).",
)
def apply_command(version: str | None, yes: bool, **params: Any) -> None:
    """Upgrade (VERSION) or reconfigure (--config) the control plane of this node.

    Backs up what it replaces to /etc/kubernetes/tmp/kube-bootstrap-backup-<time>/, then swaps etcd,
    kube-apiserver, kube-controller-manager and kube-scheduler one at a time, each waited for until
    healthy; one that is not is rolled back and the apply stops (exit 5).
    """
    from bootstrap.upgrade.prepare import prepare

    options.expect_kind("UpgradeResult")
    output, verbose = params.get("output") or "text", bool(params.get("verbose"))
    reporter = options.reporter(output, verbose, "UpgradeResult")
    request = _request(version, params)
    prepared = prepare(request, reporter)
    try:
        _apply(prepared, request, yes, reporter)
    finally:
        prepared.rd.close()


def _apply(prepared: Prepared, request: UpgradeRequest, yes: bool, reporter: Reporter) -> None:
    plan, rd = prepared.plan, prepared.rd
    renewing = prepared.renews_certificates(request)
    if request.dry_run:
        for component in plan.changed_components:
            if request.diff:
                label = f"{rd.static_pod_path}/{component.component}.yaml"
                diff = component.diff(label)
                if diff and request.output == "text":
                    reporter.text(diff.rstrip("\n"))
        if request.output == "text" and not request.diff:
            reporter.text(plan.text())
        reporter.info("upgrade", "Dry run: nothing was written")
        reporter.result(
            _document(
                "UpgradeResult",
                prepared,
                reporter,
                changed=not plan.noop,
                dryRun=True,
                certificateRenewal=renewing,
            )
        )
        return
    from bootstrap.upgrade.swaps import UpgradeFailed, apply

    try:
        applied = apply(prepared, request, _confirmation(yes, reporter))
    except UpgradeFailed as exc:
        current = options.state()
        if current is not None and exc.details:
            current.extra["upgrade"] = exc.details
        raise
    components = []
    for component in plan.components:
        entry = {
            "component": component.component,
            "changed": component.changed,
            "from": component.old_image or None,
            "to": component.new_image,
        }
        rollout = next((o for o in applied.rollouts if o.component == component.component), None)
        if rollout is not None:
            entry["rollout"] = rollout.to_dict()
        components.append(entry)
        if component.changed:
            reporter.info("upgrade", f"{component.component}: {component.old_image} → {component.new_image}")
    if plan.noop and not applied.config_updated:
        reporter.info("upgrade", "Nothing to do: the control plane already runs this configuration")
    else:
        reporter.info("upgrade", f"The control plane runs {plan.target_version}, configured as wanted")
    changed = bool(applied.rollouts) or applied.config_updated or bool(applied.renewed or applied.reissued)
    reporter.result(
        _document(
            "UpgradeResult",
            prepared,
            reporter,
            changed=changed,
            dryRun=False,
            certificateRenewal=renewing,
            components=components,
            **applied.to_dict(rd),
        )
    )
