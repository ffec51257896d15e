"""The one module that talks to the user: human lines on stderr, the JSON result on stdout.

stderr is for people (kubeadm-like ``[certs] Generating "ca" certificate and key``); stdout is for
machines (``-o json`` prints exactly one document there). Never pass key material here.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click

OUTPUT_FORMATS = ("text", "json")


class Reporter:
    """Prints progress for people and keeps warnings for the result document."""

    def __init__(self, output: str = "text", err: TextIO | None = None, verbose: bool = False) -> None:
        self.output = output
        self._err = err
        self.verbose = verbose
        self.warnings: list[str] = []

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
        """Print the machine-readable result (JSON mode only)."""
        if self.output == "json":
            click.echo(json.dumps(document, indent=2, sort_keys=False))

    def text(self, text: str) -> None:
        """Print a human-oriented payload (a table, a diff) on stdout in text mode."""
        click.echo(text, file=sys.stdout)
