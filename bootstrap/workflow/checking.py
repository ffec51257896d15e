"""Running a list of preflight checks for a phase: what init's and join's preflight phases share.

A real run stops on the errors (exit 4); a dry run warns with each error, worded as the real one,
names the failing checks in its plan, and goes on. Ignored errors become warnings either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.results import Outcome

if TYPE_CHECKING:
    from bootstrap.host.preflight_checks import Check
    from bootstrap.workflow.rundata import RunData

# A dry run never stops on a failed check: it warns with this prefix, worded as the real error.
DRY_RUN_PREFIX = "[dryrun] would fail: "


def kubelet_binary_check(rd: RunData) -> Check:
    """FileExisting-kubelet: under ``--rootfs`` only the rootfs's binaries count; on the host, PATH too."""
    from bootstrap.host import preflight_checks

    if rd.options.rootfs is not None:
        candidates = [rd.real_fs.path(b) for b in preflight_checks.KUBELET_BINARIES]
        run = partial(preflight_checks.kubelet_binary, candidates)
    else:
        candidates = [Path(b) for b in preflight_checks.KUBELET_BINARIES]
        run = partial(preflight_checks.kubelet_binary, candidates, preflight_checks.host_kubelet_on_path)
    return preflight_checks.Check("FileExisting-kubelet", run)


def run_checks(rd: RunData, checks: Sequence[Check]) -> list[Outcome]:
    """Evaluate ``checks`` with the run's ignored names; raise, or (dry run) plan, on the errors."""
    from bootstrap.host import preflight_checks

    failures = preflight_checks.evaluate(checks, rd.ignored_preflight_errors)
    for failure in failures:
        if failure.ignored:
            rd.reporter.warn(failure.line("WARNING"))
    errors = [f for f in failures if not f.ignored]
    if not errors:
        return [Outcome(False, "Running pre-flight checks: passed")]
    if not rd.dry_run:
        raise preflight_checks.failed(errors)
    for error in errors:
        rd.reporter.warn(DRY_RUN_PREFIX + error.line("ERROR"))
    names = [e.name for e in errors]
    reason = f"{len(names)} check{'s' if len(names) != 1 else ''} would fail ({', '.join(names)})"
    return [Outcome(False, f"Running pre-flight checks: {reason}", [], {"failedChecks": names}, reason)]
