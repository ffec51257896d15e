"""``bootstrap join [ENDPOINT]`` and ``bootstrap join phase <path>``, with kubeadm join's flags.

The flags come from one table (``JOIN_FLAGS``, the JoinConfiguration field each sets); flags win over
``--config``. The command only parses: the join run data reads and validates the configuration, and
the runner runs the phase tree (``JOIN_PHASES``), exactly as for init.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bootstrap.cli import options
from bootstrap.cli.phase_commands import PhaseCli, PhaseTreeEpilog, phase_group, split_endpoint
from bootstrap.config.kubeadm_flags import JOIN_FLAGS

if TYPE_CHECKING:
    from bootstrap.workflow.joindata import JoinOptions
    from bootstrap.workflow.tree import Phase, PlannedPhase

F = TypeVar("F", bound=Callable[..., Any])


def join_options(func: F) -> F:
    """The options of ``join`` and of every ``join phase`` command."""
    decorators = [
        click.option(
            "--config",
            "config_file",
            type=options.PathParam(),
            help="kubeadm.k8s.io/v1beta4 JoinConfiguration file (and an optional KubeletConfiguration).",
        ),
        options.ROOTFS,
        click.option(
            "--dry-run", is_flag=True, help="Write nothing real: files go to a temporary directory."
        ),
        options.OUTPUT,
        options.VERBOSE,
        options.SKIP_PHASES,
        options.IGNORE_PREFLIGHT_ERRORS,
        options.WAIT_TIMEOUT,
        options.SETTLE,
    ]
    for flag in JOIN_FLAGS:
        names = [f"--{name}" for name in flag.names]
        if flag.value_type is bool:
            decorators.append(click.option(*names, flag.param, is_flag=True, default=False, help=flag.help))
        else:
            decorators.append(
                click.option(
                    *names,
                    flag.param,
                    type=flag.value_type,
                    default=None,
                    multiple=flag.repeatable,
                    help=flag.help,
                )
            )
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def options_from(params: dict[str, Any]) -> JoinOptions:
    from bootstrap.workflow.joindata import JoinOptions

    overrides: dict[str, object] = {}
    for flag in JOIN_FLAGS:
        value = params.get(flag.param)
        if flag.repeatable:
            value = list(value or ())
        overrides[flag.names[0]] = value
    return JoinOptions(
        config_file=params.get("config_file"),
        rootfs=params.get("rootfs"),
        dry_run=bool(params.get("dry_run")),
        output=params.get("output") or "text",
        verbose=bool(params.get("verbose")),
        ignore_preflight_errors=options.split_list(params.get("ignore_preflight_errors")),
        timeout=options.seconds("--timeout", params.get("timeout")),
        settle=options.seconds("--settle", params.get("settle")) or 0.0,
        endpoint=params.get("endpoint"),
        join_overrides=overrides,
    )


def _join_phases() -> Sequence[Phase]:
    from bootstrap.phases import JOIN_PHASES

    return JOIN_PHASES


def _run(command: str, only: str | None, params: dict[str, Any]) -> None:
    from bootstrap.workflow.joindata import JoinRunData
    from bootstrap.workflow.runner import run_phases
    from bootstrap.workflow.tree import plan

    options.expect_kind("RunResult", command)
    run = options_from(params)
    rd = JoinRunData(run, options.reporter(run.output, run.verbose, "RunResult"))
    skip = options.split_list(params.get("skip_phases"))

    def steps() -> list[PlannedPhase]:
        # As kubeadm: JoinConfiguration.skipPhases applies to join when the flag is not given.
        configured = rd.join_config.join.skip_phases if command == "join" and not skip else None
        return plan(_join_phases(), only=only, skip=skip or configured or [])

    run_phases(rd, command, steps)


def _params() -> list[click.Parameter]:
    def dummy(**_: Any) -> None:
        return None

    return list(click.command()(join_options(dummy)).params)


JOIN_CLI = PhaseCli(phases=_join_phases, run=_run, params=_params, command="join phase", takes_endpoint=True)


class JoinGroup(PhaseTreeEpilog, options.SuggestingGroup):
    """``join [ENDPOINT]``: the first argument that is not ``phase`` is the API server endpoint."""

    phase_cli = JOIN_CLI

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        endpoint, rest = split_endpoint(self, args, lambda arg: arg != "phase")
        remaining = super().parse_args(ctx, rest)
        ctx.params["endpoint"] = endpoint
        return remaining


@click.group(
    cls=JoinGroup,
    invoke_without_command=True,
    epilog="\b\nPhases, in order (run one with 'bootstrap join phase <name> [<sub>|all]'):",
)
@join_options
def join(**params: Any) -> None:
    """Join this machine to a cluster: bootstrap join [API_SERVER_ENDPOINT] [flags].

    As a worker by default; with --control-plane (and --certificate-key) as a control-plane node.
    """
    if click.get_current_context().invoked_subcommand is None:
        _run("join", None, params)


join.add_command(
    phase_group(JOIN_CLI, "Run one phase, or one subtree of phases, of join (as kubeadm join phase).")
)
