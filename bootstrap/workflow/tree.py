"""The phase workflow: one ordered tree of phases, declared as data.

The same tree drives ``bootstrap init`` (run everything), ``bootstrap phase <path>`` (run one
subtree), ``--skip-phases`` and the help text. Phases are addressed by slash paths such as
``certs/apiserver``; a parent runs its whole subtree. Skip wins over the filter, and an unknown
name is a usage error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from bootstrap.results import Outcome

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

PhaseRun = Callable[["RunData"], list[Outcome]]
# Returns why the phase does not apply in this run (e.g. "external etcd"), or None to run it.
PhaseCondition = Callable[["RunData"], str | None]
# How many fresh private keys the phase will need, so they can be generated ahead in parallel.
KeyEstimate = Callable[["RunData"], int]


@dataclass(frozen=True)
class Phase:
    """A node of the tree: a leaf has ``run``; a parent has ``children`` and runs them in order."""

    name: str
    help: str
    run: PhaseRun | None = None
    children: tuple[Phase, ...] = ()
    skip_if: PhaseCondition | None = None
    keys_needed: KeyEstimate | None = None
    # Human-output prefix, kubeadm style: "[certs] ...". Defaults to the top-level name.
    label: str | None = None


@dataclass(frozen=True)
class PlannedPhase:
    """A leaf chosen for this run, with the reason it is skipped (None when it runs)."""

    path: str
    phase: Phase
    label: str
    skipped: str | None = None


@dataclass
class PhaseReport:
    """What happened to one leaf phase; part of the JSON result document."""

    path: str
    status: str  # "ran" | "skipped" | "failed" | "not-run" | "would-fail" (dry run only)
    changed: bool = False
    files: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "path": self.path,
            "status": self.status,
            "changed": self.changed,
            "files": self.files,
            "messages": self.messages,
        }
        if self.skip_reason:
            data["skipReason"] = self.skip_reason
        if self.details is not None:
            data["details"] = self.details
        return data


def walk(phases: Sequence[Phase], prefix: str = "") -> Iterator[tuple[str, Phase]]:
    """Every phase of the tree, parents before their children, with its slash path."""
    for phase in phases:
        path = f"{prefix}{phase.name}"
        yield path, phase
        yield from walk(phase.children, f"{path}/")


def all_paths(phases: Sequence[Phase]) -> list[str]:
    return [path for path, _ in walk(phases)]


def normalize_path(name: str) -> str:
    """``certs apiserver``/``certs/apiserver``/``certs/all`` style names to one canonical path."""
    parts = [p for p in name.replace(" ", "/").split("/") if p]
    if parts and parts[-1] == "all":
        parts = parts[:-1]
    return "/".join(parts).lower()


def _check_known(names: Iterable[str], known: set[str], what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise click.UsageError(
            f"unknown phase name(s) in {what}: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def plan(phases: Sequence[Phase], only: str | None = None, skip: Iterable[str] = ()) -> list[PlannedPhase]:
    """The leaves to consider, in tree order: under ``only`` (all if None), each marked skipped or not.

    A skipped parent skips its subtree; skip wins over ``only``.
    """
    known = set(all_paths(phases))
    skip_set = {normalize_path(s) for s in skip if s.strip()}
    _check_known(skip_set, known, "--skip-phases")
    only_path = normalize_path(only) if only else None
    if only_path is not None:
        _check_known([only_path], known, "phase")

    planned: list[PlannedPhase] = []

    def visit(phase: Phase, path: str, label: str) -> None:
        if phase.children:
            for child in phase.children:
                visit(child, f"{path}/{child.name}", label)
            return
        inside = only_path is None or path == only_path or path.startswith(f"{only_path}/")
        if not inside:
            return
        skipped_by = next((s for s in skip_set if path == s or path.startswith(f"{s}/")), None)
        reason = f"skipped by --skip-phases {skipped_by}" if skipped_by else None
        planned.append(PlannedPhase(path, phase, label, reason))

    for top in phases:
        visit(top, top.name, top.label or top.name)
    return planned


def help_tree(phases: Sequence[Phase]) -> str:
    """The indented phase list appended to ``init --help`` and ``phase --help``."""
    lines = []
    for path, phase in walk(phases):
        depth = path.count("/")
        name = f"/{phase.name}" if depth else phase.name
        lines.append(f"{'  ' * depth}{name:<{30 - 2 * depth}} {phase.help}")
    return "\n".join(lines)
