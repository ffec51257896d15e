"""Command-line entry point: parses, builds the run data, dispatches; nothing else.

Errors are translated into messages, exit codes and (with ``-o json|yaml``) the failure result
document in exactly one place, :func:`main`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bootstrap import __version__
from bootstrap.cli import options
from bootstrap.cli.cert_commands import certs
from bootstrap.cli.config_commands import config
from bootstrap.cli.join_commands import join
from bootstrap.cli.phase_commands import PhaseCli, PhaseTreeEpilog, phase_group
from bootstrap.cli.token_commands import token
from bootstrap.cli.upgrade_commands import upgrade
from bootstrap.config.kubeadm_flags import KUBEADM_FLAGS
from bootstrap.errors import EXIT_PHASE_FAILED, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from bootstrap.workflow.rundata import RunOptions
    from bootstrap.workflow.tree import Phase, PlannedPhase

F = TypeVar("F", bound=Callable[..., Any])


_split_list = options.split_list


def _refuse_patches(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise UsageError(
            f"--patches {value}: not supported yet (kube-bootstrap applies no patches; use the "
            "config's extraArgs, extraVolumes and extraEnvs)",
            ctx,
        )


def run_options(func: F) -> F:
    """The options every run command shares (config, rootfs, dry-run, output, kubeadm flags)."""
    decorators = [
        options.CONFIG,
        options.ROOTFS,
        click.option(
            "--dry-run", is_flag=True, help="Write nothing real: files go to a temporary directory."
        ),
        options.OUTPUT,
        options.VERBOSE,
        click.option(
            "--kubelet-config",
            type=options.PathParam(dir_okay=False),
            default=None,
            help="Kubelet config to read staticPodPath from (/var/lib/kubelet/config.yaml).",
        ),
        click.option(
            "--output-dir",
            type=options.PathParam(file_okay=False),
            default=None,
            help="Write manifests to this directory instead of the kubelet's watched path.",
        ),
        click.option("--diff", is_flag=True, help="Print a unified diff per manifest; write no manifest."),
        options.WAIT_TIMEOUT,
        options.SETTLE,
        click.option(
            "--quarantine-strays",
            is_flag=True,
            help="Move stray files the kubelet would run to /etc/kubernetes/tmp/quarantine-<time>/.",
        ),
    ]
    for flag in KUBEADM_FLAGS:
        names = [f"--{name}" for name in flag.names]
        decorators.append(
            click.option(*names, flag.param, type=flag.value_type, default=None, help=flag.help)
        )
    decorators += [
        click.option(
            "--skip-token-print",
            is_flag=True,
            help="Print the join command with the bootstrap token withheld.",
        ),
        click.option(
            "--upload-certs",
            is_flag=True,
            help="Upload the control-plane certificates, encrypted, to the kubeadm-certs Secret.",
        ),
        click.option(
            "--certificate-key-ttl",
            default="2h",
            metavar="DURATION",
            show_default=True,
            help="How long the uploaded certificates live before they are deleted.",
        ),
        click.option(
            "--skip-certificate-key-print",
            is_flag=True,
            help="Never print the certificate key (it is still in -o json's show-join-command details).",
        ),
        click.option(
            "--force-addons",
            is_flag=True,
            help="Replace a CoreDNS Corefile edited in the cluster (kept, with a warning, otherwise).",
        ),
        click.option(
            "--patches",
            default=None,
            metavar="DIR",
            expose_value=False,
            callback=_refuse_patches,
            help="Not supported yet (kubeadm's patch directory).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def skip_options(func: F) -> F:
    return options.SKIP_PHASES(options.IGNORE_PREFLIGHT_ERRORS(func))


def options_from(params: dict[str, Any]) -> RunOptions:
    from bootstrap.workflow.rundata import RunOptions

    overrides: dict[str, object] = {}
    for flag in KUBEADM_FLAGS:
        value = params.get(flag.param)
        if value is None:
            continue
        if flag.names[0] == "apiserver-cert-extra-sans":
            value = _split_list(value)
        elif flag.names[0] == "token-ttl":
            options.duration("--token-ttl", value)  # a usage error, before the config is read
        overrides[flag.names[0]] = value
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
        timeout=options.seconds("--timeout", params.get("timeout")),
        settle=options.seconds("--settle", params.get("settle")) or 0.0,
        skip_token_print=bool(params.get("skip_token_print")),
        upload_certs=bool(params.get("upload_certs")),
        certificate_key_ttl=_certificate_key_ttl(params.get("certificate_key_ttl") or "2h"),
        skip_certificate_key_print=bool(params.get("skip_certificate_key_print")),
        force_addons=bool(params.get("force_addons")),
    )


def _certificate_key_ttl(value: str) -> timedelta:
    ttl = options.duration("--certificate-key-ttl", value)
    if ttl <= timedelta(0):
        raise UsageError(f"--certificate-key-ttl: {value!r} must be positive (the certificates must expire)")
    return ttl


def _run(command: str, only: str | None, params: dict[str, Any]) -> None:
    # Imported here, not at the top: `bootstrap --help` must not pay for what only a run needs.
    from bootstrap.workflow.rundata import RunData
    from bootstrap.workflow.runner import run_phases
    from bootstrap.workflow.tree import plan

    options.expect_kind("RunResult", command)  # as the runner's document: "init" or "phase"
    run = options_from(params)
    rd = RunData(run, options.reporter(run.output, run.verbose, "RunResult"))
    skip = _split_list(params.get("skip_phases"))

    def steps() -> list[PlannedPhase]:
        # As kubeadm: InitConfiguration.skipPhases applies to init when the flag is not given.
        configured = rd.config.init.skip_phases if command == "init" and not skip else None
        return plan(_phases(), only=only, skip=skip or configured or [])

    if command == "init":
        # A whole init on a fresh node needs 16 keys: the first ones overlap reading the config.
        rd.start_keys_ahead()
    run_phases(rd, command, steps)


def _phases() -> Sequence[Phase]:
    """The phase tree, imported when a command first needs it: `bootstrap --help` and the commands
    that are not phases never do (building it imports every phase module and the cert table)."""
    from bootstrap.phases import PHASES

    return PHASES


class BootstrapGroup(options.SuggestingGroup):
    """Top-level group: lists commands in the order they were added (init first)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class InitGroup(PhaseTreeEpilog, BootstrapGroup):
    """``init``: its help ends with the phase tree."""


@click.group(cls=BootstrapGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootstrap")
@options.global_options
def cli(output: str, verbose: bool) -> None:
    """kube-bootstrap: bootstrap a Kubernetes control plane as static pods, kubeadm-style.

    -o/--output and -v/--verbose may also be given before the command.
    """


def _run_params() -> list[click.Parameter]:
    def dummy(**_: Any) -> None:
        return None

    return list(click.command()(skip_options(run_options(dummy))).params)


INIT_CLI = PhaseCli(phases=_phases, run=_run, params=_run_params, command="phase")
InitGroup.phase_cli = INIT_CLI
phase = phase_group(INIT_CLI, "Run one phase, or one subtree of phases, of init (as kubeadm init phase).")


@cli.group(
    cls=InitGroup,
    invoke_without_command=True,
    epilog="\b\nPhases, in order (run one with 'bootstrap init phase <name> [<sub>|all]'):",
)
@run_options
@skip_options
def init(**params: Any) -> None:
    """Run every phase in order to bootstrap a control-plane node."""
    if click.get_current_context().invoked_subcommand is None:
        _run("init", None, params)


init.add_command(phase)


@cli.command("serve-manifests")
@run_options
@click.option(
    "--listen",
    default="127.0.0.1:10280",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve the PodList on.",
)
@click.option(
    "--check", is_flag=True, help="Render and validate the PodList, print it and exit; do not listen."
)
def serve_manifests(listen: str, check: bool, **params: Any) -> None:
    """Serve the control-plane pods as a v1 PodList for kubelets using --manifest-url."""
    import json

    from bootstrap.components.render import components_for, render
    from bootstrap.components.serve import PodListSource, make_server, parse_listen
    from bootstrap.config import load_config
    from bootstrap.results import RESULT_API_VERSION as API_VERSION
    from bootstrap.workflow.rundata import RunData, host_view

    kind = "ServeManifestsCheck" if check else "ServeManifestsResult"
    options.expect_kind(kind)
    host, port = parse_listen(listen)
    run = options_from(params)
    reporter = options.reporter(run.output, run.verbose, kind)

    def pods() -> list[dict[str, Any]]:
        rd = RunData(run, reporter)
        cfg = load_config(run.config_file, run.overrides)
        return [render(c, cfg, host_view(rd)).pod for c in components_for(cfg)]

    source = PodListSource(pods, run.config_file)
    if check:
        body = source.body()
        pod_list = json.loads(body)
        _check_pod_list(pod_list)
        if run.output == "text":
            reporter.text(body.decode())
        names = [item["metadata"]["name"] for item in pod_list["items"]]
        reporter.info("serve-manifests", f"The PodList is valid: {', '.join(names)}")
        reporter.result(
            {
                "apiVersion": API_VERSION,
                "kind": kind,
                "ok": True,
                "changed": False,
                "warnings": reporter.warnings,
                "podList": pod_list,
            }
        )
        return
    if host not in ("127.0.0.1", "::1", "localhost"):
        reporter.warn(
            f"--listen {listen}: the pod specs (flags, and proxy variables of this environment) are served "
            "without authentication to anyone who can reach this address"
        )
    source.body()  # fail fast on a bad config, before listening
    server = make_server(host, port, source, reporter.debug)
    reporter.info("serve-manifests", f"Serving the control-plane PodList on http://{listen}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _check_pod_list(pod_list: dict[str, Any]) -> None:
    """What a kubelet needs from each item: a named Pod with containers, each with a name and image."""
    from bootstrap.errors import PhaseError

    for index, pod in enumerate(pod_list.get("items", [])):
        name = pod.get("metadata", {}).get("name")
        containers = pod.get("spec", {}).get("containers") or []
        if pod.get("kind") != "Pod" or not name or not containers:
            raise PhaseError(f"PodList item {index}: not a named Pod with containers")
        for container in containers:
            if not container.get("name") or not container.get("image"):
                raise PhaseError(f"PodList item {index} ({name}): a container without a name or image")


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
@options.OUTPUT
@options.VERBOSE
def reset(rootfs: Path | None, force: bool, dry_run: bool, timeout: str, output: str, verbose: bool) -> None:
    """Remove what init created: manifests first, then etcd data, PKI, kubeconfigs, kubelet files.

    Files bootstrap did not create are kept and listed.
    """
    from contextlib import nullcontext

    from bootstrap.host.fs import Rootfs
    from bootstrap.host.ledger import run_lock
    from bootstrap.host.reset import run_reset

    options.expect_kind("ResetResult")
    current = options.state()
    if current is not None:
        current.extra["dryRun"] = dry_run
    mirror_timeout = options.seconds("--timeout", timeout) or 0.0
    fs = Rootfs(rootfs)
    from pathlib import Path

    target = rootfs or Path("/")
    if not force and not dry_run:
        click.confirm(
            f"Remove the control plane that bootstrap created under {target}?", abort=True, err=True
        )
    reporter = options.reporter(output, verbose, "ResetResult")
    with nullcontext() if dry_run else run_lock(fs, warn=reporter.warn):
        result = run_reset(fs, reporter, dry_run=dry_run, mirror_timeout=mirror_timeout)
    reporter.result({**result.to_dict(dry_run), "warnings": reporter.warnings})


cli.add_command(phase)
cli.add_command(join)
cli.add_command(config)
cli.add_command(certs)
cli.add_command(token)
cli.add_command(upgrade)


def _output_in(args: Sequence[str]) -> str:
    """The -o value on the command line, read directly: a usage error can come before click reads it."""
    found = "text"
    for index, arg in enumerate(args):
        if arg == "--":
            break
        value = None
        if arg in ("-o", "--output") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--output="):
            value = arg.partition("=")[2]
        elif arg.startswith("-o") and not arg.startswith("--"):
            value = arg[2:].lstrip("=")
        if value in options.OUTPUT_FORMATS:
            found = value
    return found


def _fail(current: options.CliState, message: str, code: int) -> None:
    """Exit with ``code``; with -o json|yaml, print the failure document unless the command printed one."""
    if current.output != "text" and not current.document_printed:
        from bootstrap.output import failure_document, render_document

        warnings = current.reporter.warnings if current.reporter is not None else []
        document = failure_document(current.kind, current.command, message, code, warnings)
        document.update(current.extra)
        click.echo(render_document(document, current.output), nl=False)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and turn every error into one message and its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    current = options.CliState(output=_output_in(args), verbose="-v" in args or "--verbose" in args)
    if argv is None:
        # A plain SIGTERM would skip our cleanup (the dry-run directory, the API client's key files):
        # turn it into an exit that unwinds.
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        code = cli.main(args=args, prog_name="bootstrap", standalone_mode=False, obj=current)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        _fail(current, exc.format_message(), exc.exit_code)
    except click.ClickException as exc:
        if current.verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {exc.format_message()}", err=True)
        _fail(current, exc.format_message(), exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        _fail(current, "aborted", EXIT_PHASE_FAILED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        _fail(current, "interrupted", 130)
    except Exception as exc:  # a bug: say so plainly, with the traceback on -v
        if current.verbose:
            import traceback

            traceback.print_exc()
        message = f"internal error: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}"  # one line
        click.echo(f"error: {message} (run with -v for details)", err=True)
        _fail(current, message, EXIT_PHASE_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
