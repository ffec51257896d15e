"""Commands generated from a phase tree: ``init phase <path>`` and ``join phase <path>``.

One :class:`PhaseCli` says what a tree needs (its phases, how a path runs, the options of its
commands); :class:`PhaseGroup` builds a command per phase when asked for, resolves ``a/b`` paths and
names the closest phase on a typo (exit 2). A parent runs its whole subtree, and has an ``all`` child.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from bootstrap.cli import options
from bootstrap.errors import UsageError

if TYPE_CHECKING:
    from bootstrap.workflow.tree import Phase


@dataclass(frozen=True)
class PhaseCli:
    """A phase tree as commands: ``phases`` (imported when first needed), ``run(command, only, params)``,
    the parameters of every phase command, and whether they take kubeadm join's endpoint argument."""

    phases: Callable[[], Sequence[Phase]]
    run: Callable[[str, str | None, dict[str, Any]], None]
    params: Callable[[], list[click.Parameter]]
    command: str  # the run document's command for a phase run ("phase", "join phase")
    takes_endpoint: bool = False


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def with_parent_flags(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """``bootstrap init --rootfs R phase certs``: a flag given to a parent command applies too."""
    merged = dict(params)
    taken = {name for name in params if given(ctx, name) or (name == "endpoint" and params[name])}
    parent = ctx.parent
    while parent is not None:
        for name, value in parent.params.items():
            if (
                name in merged
                and name not in taken
                and (given(parent, name) or (name == "endpoint" and value))
            ):
                merged[name] = value
                taken.add(name)
        parent = parent.parent
    return merged


def split_endpoint(
    command: click.Command, args: list[str], is_endpoint: Callable[[str], bool]
) -> tuple[str | None, list[str]]:
    """kubeadm's ``join [api-server-endpoint] [flags]``: the first positional argument that
    ``is_endpoint`` accepts, and the other arguments. Option values are never taken for it."""
    takes_value = {
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for opt in param.opts
    }
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        if arg.startswith("-"):
            index += 2 if arg in takes_value else 1
            continue
        if is_endpoint(arg):
            return arg, args[:index] + args[index + 1 :]
        break  # a subcommand: what follows is its business
    return None, args


def _looks_like_endpoint(arg: str) -> bool:
    """Inside ``join phase``: phase names never hold a colon; host:port always does."""
    return ":" in arg


class EndpointCommand(click.Command):
    """A phase leaf of ``join phase``: takes the endpoint as kubeadm's does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        endpoint, rest = split_endpoint(self, args, _looks_like_endpoint)
        remaining = super().parse_args(ctx, rest)
        ctx.params["endpoint"] = endpoint
        return remaining


class PhaseTreeEpilog(click.Group):
    """A group whose epilog (when it has one) is followed by its phase tree, listed when the help is
    shown rather than when the CLI is built."""

    phase_cli: PhaseCli | None = None

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog and self.phase_cli is not None:
            from bootstrap.workflow.tree import help_tree

            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(inspect.cleandoc(f"{self.epilog}\n{help_tree(self.phase_cli.phases())}"))


class PhaseGroup(PhaseTreeEpilog, options.SuggestingGroup):
    """Commands generated from a list of phases, built when asked for; ``a/b`` paths resolve too.

    A parent phase runs its whole subtree when no child is named, and has an ``all`` child.
    """

    def __init__(
        self,
        *args: Any,
        phase_cli: PhaseCli,
        phases: Callable[[], Sequence[Phase]],
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.phase_cli = phase_cli
        self._phases = phases
        self.prefix = prefix

    @cached_property
    def phases(self) -> dict[str, Phase]:
        return {p.name: p for p in self._phases()}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        assert self.phase_cli is not None
        if not self.phase_cli.takes_endpoint:
            return super().parse_args(ctx, args)
        endpoint, rest = split_endpoint(self, args, _looks_like_endpoint)
        remaining = super().parse_args(ctx, rest)
        ctx.params["endpoint"] = endpoint
        return remaining

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        assert self.phase_cli is not None
        head, _, rest = cmd_name.partition("/")
        if head == "all" and self.prefix and not rest:
            return command_for(self.phase_cli, self.prefix.rstrip("/"), "all", None)
        if head not in self.phases:
            return super().get_command(ctx, cmd_name)
        command = command_for(self.phase_cli, f"{self.prefix}{head}", head, self.phases[head])
        if rest:
            return command.get_command(ctx, rest) if isinstance(command, click.Group) else None
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return (["all"] if self.prefix else []) + list(self.phases)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        assert self.phase_cli is not None
        name = args[0] if args else ""
        if args and not name.startswith("-") and self.get_command(ctx, name) is None:
            from bootstrap.workflow.tree import all_paths

            known = [
                p.removeprefix(self.prefix)
                for p in all_paths(self.phase_cli.phases())
                if p.startswith(self.prefix)
            ]
            where = f" under {self.prefix.rstrip('/')}" if self.prefix else ""
            hint = options.did_you_mean(name, [*known, "all"])
            raise UsageError(f"unknown phase {name!r}{where}{hint}", ctx)
        return super().resolve_command(ctx, args)


def command_for(phase_cli: PhaseCli, path: str, name: str, phase: Phase | None) -> click.Command:
    """The command running ``path``: a leaf, a parent group, or (``phase`` None) a parent's ``all``."""

    def callback(**params: Any) -> None:
        ctx = click.get_current_context()
        if isinstance(ctx.command, click.Group) and ctx.invoked_subcommand is not None:
            return
        phase_cli.run(phase_cli.command, path, with_parent_flags(ctx, params))

    leaf = EndpointCommand if phase_cli.takes_endpoint else click.Command
    if phase is None:
        return leaf(name, callback=callback, help="Run every sub-phase", params=phase_cli.params())
    if not phase.children:
        return leaf(name, callback=callback, help=phase.help, params=phase_cli.params())
    return PhaseGroup(
        name,
        callback=callback,
        invoke_without_command=True,
        help=f"{phase.help}. Without a sub-phase, runs them all.",
        params=phase_cli.params(),
        phase_cli=phase_cli,
        phases=lambda: phase.children,
        prefix=f"{path}/",
    )


def phase_group(phase_cli: PhaseCli, help_text: str) -> PhaseGroup:
    """The ``phase`` command of a tree."""
    return PhaseGroup(
        "phase",
        params=list(options.global_options(click.command()(lambda **_: None)).params),
        help=help_text,
        epilog="\b\nPhases (run a parent to run its subtree; a/b paths and 'all' work too):",
        phase_cli=phase_cli,
        phases=phase_cli.phases,
    )
