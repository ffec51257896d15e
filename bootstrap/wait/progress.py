"""Showing the wait: a live table on a terminal, one line per state change otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol, TextIO

import click


@dataclass(frozen=True)
class Row:
    component: str
    pod: str  # "Running", "Pending (ImagePullBackOff)", "Missing"
    ready: bool
    restarts: int
    health: str  # "ok" or the last error
    state: str  # "healthy", "settling", "waiting"
    elapsed: float

    def key(self) -> tuple[object, ...]:
        """What counts as a state change (not the ticking clock)."""
        return (self.pod, self.ready, self.restarts, self.health, self.state)


class Progress(Protocol):
    def note(self, text: str) -> None: ...
    def update(self, rows: list[Row], api_note: str | None) -> None: ...
    def close(self) -> None: ...


LABEL = "[control-plane-check]"


class LineProgress:
    """For logs and CI: one line each time a component's state changes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._last: dict[str, tuple[object, ...]] = {}
        self._api_note: str | None = None

    def note(self, text: str) -> None:
        click.echo(f"{LABEL} {text}", err=True, file=self._stream)

    def update(self, rows: list[Row], api_note: str | None) -> None:
        if api_note != self._api_note:
            self._api_note = api_note
            if api_note:
                self.note(api_note)
        for row in rows:
            if self._last.get(row.component) != row.key():
                self._last[row.component] = row.key()
                ready = "ready" if row.ready else "not ready"
                self.note(
                    f"{row.component}: pod {row.pod}, {ready}, restarts {row.restarts}, "
                    f"health {row.health}; {row.state} after {row.elapsed:.1f}s"
                )

    def close(self) -> None:
        return None


class TableProgress:
    """On a terminal: one row per component, redrawn in place."""

    HEADER = ("COMPONENT", "MIRROR POD", "READY", "RESTARTS", "HEALTH", "STATE", "ELAPSED")

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._drawn = 0

    def note(self, text: str) -> None:
        self._erase()
        click.echo(f"{LABEL} {text}", file=self._stream)

    def update(self, rows: list[Row], api_note: str | None) -> None:
        lines = [self.HEADER] + [
            (
                r.component,
                r.pod,
                "yes" if r.ready else "no",
                str(r.restarts),
                r.health[:48],
                r.state,
                f"{r.elapsed:.1f}s",
            )
            for r in rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.HEADER))]
        text = ["   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
        if api_note:
            text.append(api_note)
        self._erase()
        for line in text:
            click.echo(line, file=self._stream)
        self._drawn = len(text)

    def _erase(self) -> None:
        if self._drawn:
            self._stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def close(self) -> None:
        self._drawn = 0


def progress_for(stream: TextIO | None = None) -> Progress:
    target = stream or sys.stderr
    return TableProgress(target) if target.isatty() else LineProgress(stream)
