"""Preflight checks: each has a kubeadm-style name, all run, all failures are reported at once.

``--ignore-preflight-errors`` (case-insensitive names, or ``all``) turns named errors into warnings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bootstrap.errors import PreflightError, UsageError

MIN_CPUS = 2
MIN_MEMORY_MB = 1700


@dataclass(frozen=True)
class Check:
    """A named check: returns a problem description, or None when it passes."""

    name: str
    run: Callable[[], str | None]


def privileged_user() -> str | None:
    return None if os.geteuid() == 0 else "user is not running as root"


def num_cpu() -> str | None:
    cpus = os.cpu_count() or 1
    return (
        None
        if cpus >= MIN_CPUS
        else f"the number of available CPUs {cpus} is less than the required {MIN_CPUS}"
    )


def memory() -> str | None:
    try:
        with open("/proc/meminfo") as meminfo:
            total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        return None
    total_mb = total_kb // 1024
    if total_mb < MIN_MEMORY_MB:
        return f"the system RAM ({total_mb} MB) is less than the minimum {MIN_MEMORY_MB} MB"
    return None


def normalize_ignored(names: Iterable[str]) -> set[str]:
    ignored = {n.strip().lower() for n in names if n.strip()}
    if "all" in ignored and len(ignored) > 1:
        raise UsageError("--ignore-preflight-errors: 'all' cannot be combined with other names")
    return ignored


def run_checks(checks: Sequence[Check], ignored: set[str]) -> list[str]:
    """Run every check; return warning lines for ignored failures, raise for the rest (all at once)."""
    errors: list[str] = []
    warnings: list[str] = []
    for check in checks:
        problem = check.run()
        if problem is None:
            continue
        line = f"[{{}} {check.name}]: {problem}"
        if "all" in ignored or check.name.lower() in ignored:
            warnings.append(line.format("WARNING"))
        else:
            errors.append(line.format("ERROR"))
    if errors:
        raise PreflightError(
            "preflight checks failed:\n"
            + "\n".join(errors)
            + "\nTo ignore a check, use --ignore-preflight-errors=<Name>,..."
        )
    return warnings
