"""Command-line entry point: parses, builds the run data, dispatches; nothing else.

Errors are translated into messages and exit codes in exactly one place, :func:`main`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bootstrap import __version__
from bootstrap import cli_options as options
from bootstrap.cli_certs import certs
from bootstrap.cli_config import config
from bootstrap.errors import EXIT_PHASE_FAILED
from bootstrap.output import OUTPUT_FORMATS
from bootstrap.phases import PHASES
from bootstrap.workflow import Phase, PlannedPhase, help_tree, plan

if TYPE_CHECKING:
    from bootstrap.rundata import RunOptions

F = TypeVar("F", bound=Callable[..., Any])

# kubeadm flag name -> click parameter name; values land in RunOptions.overrides under the flag name.
CONFIG_FLAGS: dict[str, tuple[str, type, str]] = {
    "advertise-address": ("advertise_address", str, "The IP address the API server advertises."),
    "apiserver-bind-port": ("apiserver_bind_port", int, "Port for the API server to bind to (6443)."),
    "node-name": ("node_name", str, "The node name (default: the hostname, lower-cased)."),
    "control-plane-endpoint": ("control_plane_endpoint", str, "A stable host[:port] for the control plane."),
    "service-cidr": ("service_cidr", str, "Service virtual IP range (10.96.0.0/12)."),
    "pod-network-cidr": ("pod_network_cidr", str, "Pod network range; enables node CIDR allocation."),
    "service-dns-domain": ("service_dns_domain", str, "Service DNS domain (cluster.local)."),
    "cert-dir": ("cert_dir", str, "Where certificates are stored (/etc/kubernetes/pki)."),
    "kubernetes-version": ("kubernetes_version", str, "Kubernetes version of the control plane."),
    "apiserver-cert-extra-sans": (
        "apiserver_cert_extra_sans",
        str,
        "Extra SANs (IPs or DNS names, comma-separated) for the API server cert.",
    ),
}


def _split_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def run_options(func: F) -> F:
    """The options every run command shares (config, rootfs, dry-run, output, kubeadm flags)."""
    decorators = [
        options.CONFIG,
        options.ROOTFS,
        click.option(
            "--dry-run", is_flag=True, help="Write nothing real: files go to a temporary directory."
        ),
        click.option(
            "-o",
            "--output",
            type=click.Choice(OUTPUT_FORMATS),
            default="text",
            show_default=True,
            help="json prints one result document on stdout.",
        ),
        options.VERBOSE,
    ]
    decorators += [
        click.option(
            "--kubelet-config",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Kubelet config to read staticPodPath from (/var/lib/kubelet/config.yaml).",
        ),
        click.option(
            "--output-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="Write manifests to this directory instead of the kubelet's watched path.",
        ),
        click.option("--diff", is_flag=True, help="Print a unified diff per manifest; write no manifest."),
        click.option(
            "--timeout",
            default=None,
            metavar="DURATION",
            help="wait-control-plane deadline (default: timeouts.controlPlaneComponentHealthCheck, 4m).",
        ),
        click.option(
            "--settle",
            default="5s",
            metavar="DURATION",
            show_default=True,
            help="How long every component must stay healthy before the wait succeeds.",
        ),
        click.option(
            "--quarantine-strays",
            is_flag=True,
            help="Move stray files the kubelet would run to /etc/kubernetes/tmp/quarantine-<time>/.",
        ),
    ]
    for flag, (param, kind, text) in CONFIG_FLAGS.items():
        decorators.append(click.option(f"--{flag}", param, type=kind, default=None, help=text))
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def skip_options(func: F) -> F:
    func = click.option(
        "--ignore-preflight-errors",
        default="",
        metavar="NAMES",
        help="Preflight checks whose errors become warnings (comma-separated, or 'all').",
    )(func)
    return click.option(
        "--skip-phases",
        default="",
        metavar="PHASES",
        help="Phases to skip, comma-separated slash paths (e.g. certs/sa,kubeconfig).",
    )(func)


def options_from(params: dict[str, Any]) -> RunOptions:
    from bootstrap.rundata import RunOptions

    overrides: dict[str, object] = {}
    for flag, (param, _, _) in CONFIG_FLAGS.items():
        value = params.get(param)
        if value is None:
            continue
        overrides[flag] = _split_list(value) if flag == "apiserver-cert-extra-sans" else value
    return RunOptions(
        config_file=params.get("config_file"),
        overrides=overrides,
        rootfs=params.get("rootfs"),
        # --diff shows what would change and writes nothing: a dry run that prints diffs.
        dry_run=bool(params.get("dry_run")) or bool(params.get("diff")),
        output=params.get("output") or "text",
        verbose=bool(params.get("verbose")),
        ignore_preflight_errors=_split_list(params.get("ignore_preflight_errors")),
        kubelet_config=params.get("kubelet_config"),
        output_dir=params.get("output_dir"),
        diff=bool(params.get("diff")),
        quarantine_strays=bool(params.get("quarantine_strays")),
        timeout=_seconds("--timeout", params.get("timeout")),
        settle=_seconds("--settle", params.get("settle")) or 0.0,
    )


def _seconds(option: str, value: str | None) -> float | None:
    """A Go duration (``4m``, ``500ms``) or plain seconds, as seconds."""
    if value is None:
        return None
    from bootstrap.config import parse_go_duration
    from bootstrap.errors import UsageError

    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_go_duration(value).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{option}: {value!r} is not a duration (e.g. 90s, 4m)") from exc


def _run(command: str, only: str | None, params: dict[str, Any]) -> None:
    # Imported here, not at the top: `bootstrap --help` must not pay for what only a run needs.
    from bootstrap.output import Reporter
    from bootstrap.rundata import RunData
    from bootstrap.runner import run_phases

    options = options_from(params)
    rd = RunData(options, Reporter(options.output, verbose=options.verbose))
    skip = _split_list(params.get("skip_phases"))

    def steps() -> list[PlannedPhase]:
        # As kubeadm: InitConfiguration.skipPhases applies to init when the flag is not given.
        configured = rd.config.init.skip_phases if command == "init" and not skip else None
        return plan(PHASES, only=only, skip=skip or configured or [])

    run_phases(rd, command, steps)


class BootstrapGroup(click.Group):
    """Top-level group: lists commands in the order they were added (init first)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=BootstrapGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
def cli() -> None:
    """kube-bootstrap: bootstrap a Kubernetes control plane as static pods, kubeadm-style."""


@cli.command(epilog="\b\nPhases, in order:\n" + help_tree(PHASES))
@run_options
@skip_options
def init(**params: Any) -> None:
    """Run every phase in order to bootstrap a control-plane node."""
    _run("init", None, params)


class PhaseGroup(click.Group):
    """Commands generated from a list of phases, built when asked for; ``a/b`` paths resolve too.

    A parent phase runs its whole subtree when no child is named, and has an ``all`` child.
    """

    def __init__(self, *args: Any, phases: Sequence[Phase] = (), prefix: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phases = {p.name: p for p in phases}
        self.prefix = prefix

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        head, _, rest = cmd_name.partition("/")
        if head == "all" and self.prefix and not rest:
            return _command_for(self.prefix.rstrip("/"), "all", None)
        if head not in self.phases:
            return super().get_command(ctx, cmd_name)
        command = _command_for(f"{self.prefix}{head}", head, self.phases[head])
        if rest:
            return command.get_command(ctx, rest) if isinstance(command, click.Group) else None
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return (["all"] if self.prefix else []) + list(self.phases)


def _command_for(path: str, name: str, phase: Phase | None) -> click.Command:
    """The command running ``path``: a leaf, a parent group, or (``phase`` None) a parent's ``all``."""

    def callback(**params: Any) -> None:
        ctx = click.get_current_context()
        if isinstance(ctx.command, click.Group) and ctx.invoked_subcommand is not None:
            return
        _run("phase", path, params)

    if phase is None:
        return click.Command(name, callback=callback, help="Run every sub-phase", params=_run_params())
    if not phase.children:
        return click.Command(name, callback=callback, help=phase.help, params=_run_params())
    return PhaseGroup(
        name,
        callback=callback,
        invoke_without_command=True,
        help=f"{phase.help}. Without a sub-phase, runs them all.",
        params=_run_params(),
        phases=phase.children,
        prefix=f"{path}/",
    )


def _run_params() -> list[click.Parameter]:
    def dummy(**_: Any) -> None:
        return None

    return list(click.command()(skip_options(run_options(dummy))).params)


@cli.command("serve-manifests")
@run_options
@click.option(
    "--listen",
    default="127.0.0.1:10280",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve the PodList on.",
)
def serve_manifests(listen: str, **params: Any) -> None:
    """Serve the control-plane pods as a v1 PodList for kubelets using --manifest-url."""
    from bootstrap.config import load_config
    from bootstrap.manifests.render import components_for, render
    from bootstrap.output import Reporter
    from bootstrap.phases.manifests import host_view
    from bootstrap.rundata import RunData
    from bootstrap.serve import PodListSource, make_server, parse_listen

    host, port = parse_listen(listen)
    options = options_from(params)
    reporter = Reporter(verbose=options.verbose)

    def pods() -> list[dict[str, Any]]:
        rd = RunData(options, reporter)
        cfg = load_config(options.config_file, options.overrides)
        return [render(c, cfg, host_view(rd)).pod for c in components_for(cfg)]

    if host not in ("127.0.0.1", "::1", "localhost"):
        reporter.warn(
            f"--listen {listen}: the pod specs (flags, and proxy variables of this environment) are served "
            "without authentication to anyone who can reach this address"
        )
    source = PodListSource(pods, options.config_file)
    source.body()  # fail fast on a bad config, before listening
    server = make_server(host, port, source, reporter.debug)
    reporter.info("serve-manifests", f"Serving the control-plane PodList on http://{listen}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@cli.command()
@options.ROOTFS
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--timeout",
    default="60s",
    metavar="DURATION",
    show_default=True,
    help="How long to wait for the kubelet to remove the mirror pods.",
)
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default="text", show_default=True)
@options.VERBOSE
def reset(rootfs: Path | None, force: bool, dry_run: bool, timeout: str, output: str, verbose: bool) -> None:
    """Remove what init created: manifests first, then etcd data, PKI, kubeconfigs, kubelet files.

    Files bootstrap did not create are kept and listed.
    """
    from contextlib import nullcontext

    from bootstrap.fsutil import Rootfs
    from bootstrap.ledger import run_lock
    from bootstrap.output import Reporter
    from bootstrap.reset import run_reset

    fs = Rootfs(rootfs)
    target = rootfs or Path("/")
    if not force and not dry_run:
        click.confirm(
            f"Remove the control plane that bootstrap created under {target}?", abort=True, err=True
        )
    reporter = Reporter(output, verbose=verbose)
    with nullcontext() if dry_run else run_lock(fs, warn=reporter.warn):
        result = run_reset(
            fs, reporter, dry_run=dry_run, mirror_timeout=_seconds("--timeout", timeout) or 0.0
        )
    reporter.result(result.to_dict(dry_run))


phase = PhaseGroup(
    "phase",
    help="Run one phase, or one subtree of phases, of ``init``.",
    epilog="\b\nPhases (run a parent to run its subtree; a/b paths work too):\n" + help_tree(PHASES),
    phases=PHASES,
)
cli.add_command(phase)

cli.add_command(config)
cli.add_command(certs)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and turn every error into one message and its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    if argv is None:
        # A plain SIGTERM would skip our cleanup (the dry-run directory, the API client's key files):
        # turn it into an exit that unwinds.
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        code = cli.main(args=args, prog_name="bootstrap", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_PHASE_FAILED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, with the traceback on -v
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(
            f"error: internal error: {exc.__class__.__name__}: {exc} (run with -v for details)", err=True
        )
        sys.exit(EXIT_PHASE_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
