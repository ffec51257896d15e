"""The one exception hierarchy of kube-bootstrap and the exit codes it maps to.

Every error a user can cause is a :class:`BootstrapError`; the CLI translates it in one place
(``bootstrap.cli.main.main``) into a one-line message and its documented exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

EXIT_OK = 0
EXIT_PHASE_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_CONFIG = 3
EXIT_PREFLIGHT_FAILED = 4
EXIT_WAIT_TIMEOUT = 5


class BootstrapError(click.ClickException):
    """A failure the user can act on; never shown with a traceback unless ``-v``.

    ``phase`` is set by the runner to the slash path of the phase that failed, and prefixes the
    message (``phase certs/apiserver: ...``).
    """

    exit_code = EXIT_PHASE_FAILED
    phase: str | None = None
    details: dict[str, Any] | None = None  # structured facts for the JSON result (never secrets)

    def format_message(self) -> str:
        return self.with_phase(self.message)

    def with_phase(self, text: str) -> str:
        return f"phase {self.phase}: {text}" if self.phase else text


class UsageError(click.UsageError):
    """The command line is wrong (exit 2); click's own usage errors are of this kind too."""


class PhaseError(BootstrapError):
    """A phase could not complete (a file is wrong, a write failed, ...)."""

    exit_code = EXIT_PHASE_FAILED


class InternalError(PhaseError):
    """A bug: an exception no check foresaw, reported as one line naming the phase and the input.

    Any such error is a missing check: each one found gets a regression test and a real message.
    """

    @classmethod
    def of(cls, exc: BaseException, phase: str, config_file: object | None) -> InternalError:
        text = " ".join(str(exc).split())[:300]  # one line, whatever the exception says
        source = f"--config {config_file}" if config_file is not None else "defaults and flags, no --config"
        error = cls(
            f"internal error: {type(exc).__name__}: {text} (input: {source}); "
            "this is a bug, run with -v for the traceback"
        )
        error.phase = phase
        return error


class PkiError(PhaseError):
    """An existing certificate, key or kubeconfig is unusable; the message names the file and the fix."""


class ConfigError(BootstrapError):
    """The configuration (file or flags) is invalid; carries every problem found, each naming its field."""

    exit_code = EXIT_INVALID_CONFIG

    def __init__(self, problems: Sequence[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def format_message(self) -> str:
        if len(self.problems) == 1:
            return self.with_phase(f"invalid configuration: {self.problems[0]}")
        lines = [self.with_phase(f"invalid configuration ({len(self.problems)} problems):")]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class PreflightError(BootstrapError):
    """One or more preflight checks failed."""

    exit_code = EXIT_PREFLIGHT_FAILED


class WaitTimeoutError(BootstrapError):
    """The control plane did not become healthy before the deadline."""

    exit_code = EXIT_WAIT_TIMEOUT
