"""The one module that talks to the user: human lines on stderr, the result document on stdout.

stderr is for people (kubeadm-like ``[certs] Generating "ca" certificate and key``); stdout is for
machines (``-o json`` or ``-o yaml`` prints exactly one document there, also when the command
fails). Never pass key material here.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click

from bootstrap import __version__
from bootstrap.results import RESULT_API_VERSION as API_VERSION

DOCUMENT_FORMATS = ("json", "yaml")


def render_document(document: dict[str, Any], output: str) -> str:
    """``document`` as JSON or YAML text (one document, ending in a newline)."""
    if output == "yaml":
        import yaml  # imported here: `bootstrap --help` must not pay for it

        # A message stays one line however long, as in the JSON document.
        return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1 << 20))
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def failure_document(
    kind: str, command: str, message: str, exit_code: int, warnings: list[str] | None = None
) -> dict[str, Any]:
    """The result document of a command that failed before it could build its own."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "version": __version__,
        "command": command,
        "ok": False,
        "changed": False,
        "warnings": list(warnings or []),
        "error": {"message": message, "exitCode": exit_code},
    }


class Reporter:
    """Prints progress for people and keeps warnings for the result document."""

    def __init__(self, output: str = "text", err: TextIO | None = None, verbose: bool = False) -> None:
        self.output = output
        self._err = err
        self.verbose = verbose
        self.warnings: list[str] = []
        self.printed = False  # whether the result document went out

    def info(self, label: str, message: str) -> None:
        for line in message.splitlines():
            click.echo(f"[{label}] {line}", err=True, file=self._err)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        click.echo(f"[warning] {message}", err=True, file=self._err)

    def debug(self, message: str) -> None:
        if self.verbose:
            click.echo(f"[debug] {message}", err=True, file=self._err)

    def result(self, document: dict[str, Any]) -> None:
        """Print the machine-readable result (json and yaml modes only)."""
        if self.output in DOCUMENT_FORMATS:
            click.echo(render_document(document, self.output), nl=False)
            self.printed = True

    def text(self, text: str) -> None:
        """Print a human-oriented payload (a table, a diff) on stdout in text mode."""
        click.echo(text, file=sys.stdout)
