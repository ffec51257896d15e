"""Click options and helpers shared by every command, declared once.

``-o/--output`` and ``-v/--verbose`` are global: accepted on the top-level group and on every
subcommand, before or after the subcommand name; the value nearest the command wins. The resolved
values and the command path are kept in a :class:`CliState` (the root context's ``obj``) so that
:func:`bootstrap.cli.main.main` can print the result document of a command that failed before, or
without, printing it itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from bootstrap.errors import UsageError
from bootstrap.output import DOCUMENT_FORMATS

if TYPE_CHECKING:
    from bootstrap.output import Reporter

# Text for people; the document formats are the output module's.
OUTPUT_FORMATS = ("text", *DOCUMENT_FORMATS)


@dataclass
class CliState:
    """What ``main`` needs to know after a command failed: the format asked for, and what was printed."""

    output: str = "text"
    verbose: bool = False
    command: str = ""
    kind: str = "Result"  # the kind of the command's result document
    reporter: Reporter | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields the failure document should carry

    @property
    def document_printed(self) -> bool:
        return self.reporter is not None and self.reporter.printed


def state(ctx: click.Context | None = None) -> CliState | None:
    """The run's :class:`CliState`, or None when the CLI is driven without ``main`` (tests, help)."""
    ctx = ctx or click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, CliState) else None


def _inherit(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global option not given here takes the value given to the nearest parent command."""
    name = param.name
    assert name is not None
    given = ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
    parent = ctx.parent
    while parent is not None and not given:
        if name in parent.params and parent.get_parameter_source(name) not in (None, ParameterSource.DEFAULT):
            value, given = parent.params[name], True
        parent = parent.parent
    current = state(ctx)
    if current is not None:
        current.command = " ".join(ctx.command_path.split()[1:])
        if given:  # a default must not hide what main read from the command line
            setattr(current, name, value)
    return value


OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="text",
    show_default=True,
    callback=_inherit,
    help="json or yaml: one result document on stdout, also on failure (ok: false and the error).",
)
VERBOSE = click.option(
    "-v", "--verbose", is_flag=True, callback=_inherit, help="Debug output and tracebacks."
)


class PathParam(click.Path):
    """``click.Path`` whose value is a :class:`pathlib.Path`, with pathlib imported only once a path
    is given: building the commands (``--help``) does not pay for it."""

    def coerce_path_result(self, value: str | os.PathLike[str]) -> Any:
        from pathlib import Path

        return value if isinstance(value, Path) else Path(value)  # as click does for path_type=Path


def global_options(func: Any) -> Any:
    """``-o`` and ``-v``, for a group: given there, they apply to its subcommands."""
    return OUTPUT(VERBOSE(func))


CONFIG = click.option(
    "--config",
    "config_file",
    # No existence/type checks here: the loader refuses a missing, unreadable or directory path (exit 3).
    type=PathParam(),
    help="kubeadm.k8s.io/v1beta4 config file (InitConfiguration, ClusterConfiguration).",
)
IGNORE_PREFLIGHT_ERRORS = click.option(
    "--ignore-preflight-errors",
    default="",
    metavar="NAMES",
    help="Preflight checks whose errors become warnings (comma-separated, or 'all').",
)
SKIP_PHASES = click.option(
    "--skip-phases",
    default="",
    metavar="PHASES",
    help="Phases to skip, comma-separated slash paths (e.g. certs/sa,kubeconfig).",
)
WAIT_TIMEOUT = click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    help="wait-control-plane deadline (default: timeouts.controlPlaneComponentHealthCheck, 4m).",
)
SETTLE = click.option(
    "--settle",
    default="5s",
    metavar="DURATION",
    show_default=True,
    help="How long every component must stay healthy before wait-control-plane succeeds.",
)
ROOTFS = click.option(
    "--rootfs",
    type=PathParam(file_okay=False),
    help="Resolve every host path under this directory.",
)


def split_list(value: str | None) -> list[str]:
    """The items of a comma-separated option value, stripped, empty ones dropped."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def reporter(output: str, verbose: bool, kind: str) -> Reporter:
    """The command's reporter, remembered so that ``main`` knows whether the result was printed."""
    from bootstrap.output import Reporter

    made = Reporter(output, verbose=verbose)
    current = state()
    if current is not None:
        current.reporter, current.kind = made, kind
    return made


def expect_kind(kind: str, command: str | None = None) -> None:
    """Name the kind (and command) of the result document this command prints, for the failure document."""
    current = state()
    if current is not None:
        current.kind = kind
        current.command = command or current.command


def duration(option: str, value: str) -> timedelta:
    """A Go duration with its unit (``90s``, ``4m``, ``1h30m``; ``0`` alone), as kubeadm takes them.

    A bare number is refused: kubeadm's durations need a unit, and guessing seconds would hide a typo.
    """
    from bootstrap.config.durations import parse_go_duration

    stripped = value.strip()
    try:
        float(stripped)
    except ValueError:
        pass
    else:
        if stripped not in ("0", "+0", "-0"):
            raise UsageError(f"{option}: {value!r} has no unit (did you mean {stripped}s?)")
    try:
        return parse_go_duration(value)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not a duration (e.g. 90s, 4m, 1h30m)") from None


def seconds(option: str, value: str | None) -> float | None:
    return None if value is None else duration(option, value).total_seconds()


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or nothing when none is close."""
    import difflib  # only a mistyped name pays for it

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class SuggestingGroup(click.Group):
    """A group whose unknown-subcommand error names the closest valid one (exit 2)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise UsageError(
                f"unknown command {name!r} for {ctx.command_path!r}"
                f"{did_you_mean(name, self.list_commands(ctx))}",
                ctx,
            )
        return super().resolve_command(ctx, args)
